"""Batch sources (parquet written by ``nextbest data generate`` or your own pipeline) and push sources.

Paths are absolute: DuckDB resolves relative ``FileSource`` paths against the working directory, which would
make commands depend on where they are run from.
"""

from __future__ import annotations

from pathlib import Path

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from nextbest.core.features import ViewSpec


def batch_source(spec: ViewSpec, data_dir: Path) -> FileSource:
    path = (data_dir / "feature_tables" / f"{spec.table}.parquet").resolve()
    return FileSource(
        name=f"{spec.table}_source",
        path=str(path),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        description=f"Batch table for {spec.name}",
    )


def push_source(spec: ViewSpec, data_dir: Path) -> PushSource:
    assert spec.push_source is not None
    return PushSource(
        name=spec.push_source,
        batch_source=batch_source(spec, data_dir),
        description=f"Real-time updates of {spec.name}",
    )
