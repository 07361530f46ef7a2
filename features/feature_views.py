"""Feature views built from the shared declarations. ``ttl`` is the point-in-time horizon offline and, in
:mod:`nextbest.features.online`, the freshness limit online."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field
from feast.types import Float64, Int64, PrimitiveFeastType, String

from nextbest.core.features import VIEWS, DType, ViewSpec
from nextbest.features.data_sources import batch_source, push_source

FEAST_TYPES: dict[DType, PrimitiveFeastType] = {"int64": Int64, "float64": Float64, "string": String}


def feature_view(spec: ViewSpec, entity: Entity, data_dir: Path) -> FeatureView:
    source = push_source(spec, data_dir) if spec.push_source else batch_source(spec, data_dir)
    return FeatureView(
        name=spec.name,
        entities=[entity],
        ttl=timedelta(days=spec.ttl_days) if spec.ttl_days else timedelta(0),
        schema=[Field(name=f.name, dtype=FEAST_TYPES[f.dtype], description=f.description) for f in spec.fields],
        source=source,
        online=True,
        description=spec.description,
        tags={"freshness_days": str(spec.ttl_days or "none")},
    )


def feature_views(entity: Entity, data_dir: Path) -> list[FeatureView]:
    return [feature_view(spec, entity, data_dir) for spec in VIEWS]
