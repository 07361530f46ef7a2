"""Opening the Feast store from the nextbest settings, applying definitions and materializing.

The per-environment ``feature_store.yaml`` holds infrastructure only, with ``${NAME}`` placeholders filled
from the settings, so every command works from any working directory. With ``feast_registry_url`` the
registry is Feast's SQL registry (e.g. on PostgreSQL) instead of the file under ``NEXTBEST_HOME``: every host
reads the definitions the batch host applied, with no file to copy.
"""

from __future__ import annotations

import logging
import os
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from nextbest.errors import ConfigError, DataError
from nextbest.settings import Settings

log = logging.getLogger(__name__)
#: How long a process serves its cached copy of a SQL registry before reading it again.
REGISTRY_CACHE_TTL_S = 60


def repo_config(settings: Settings) -> Any:
    """The Feast ``RepoConfig`` for the configured environment, placeholders filled in."""
    from feast.repo_config import RepoConfig

    path = settings.feature_store_yaml
    if not path.is_file():
        raise ConfigError(f"feature store config {path} does not exist")
    try:
        text = string.Template(path.read_text()).substitute({**os.environ, **settings.template_vars})
        raw = yaml.safe_load(text)
    except (KeyError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if settings.feast_registry_url:  # one registry for every host: `features apply` once, all replicas see it
        raw["registry"] = {
            "registry_type": "sql",
            "path": settings.feast_registry_url,  # Feast puts postgresql:// on the psycopg 3 driver
            "cache_ttl_seconds": REGISTRY_CACHE_TTL_S,
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        }
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(repo_path=settings.features_dir, **raw)


def open_store(settings: Settings) -> Any:
    """A ``FeatureStore`` for the configured environment (Feast is imported here, not at module import)."""
    from feast import FeatureStore

    return FeatureStore(repo_path=str(settings.features_dir), config=repo_config(settings))


def definitions(data_dir: Path) -> list[Any]:
    """Every Feast object of the repository, with batch sources under ``data_dir/feature_tables``."""
    from nextbest.features.entities import customer
    from nextbest.features.feature_services import feature_services
    from nextbest.features.feature_views import feature_views
    from nextbest.features.on_demand import request_time_view

    entity = customer()
    views = feature_views(entity, data_dir)
    odfv = request_time_view(views)
    sources = [v.stream_source or v.batch_source for v in views]
    push_batch = [v.batch_source for v in views if v.stream_source is not None]
    return [entity, *sources, *push_batch, *views, odfv, *feature_services(views, odfv)]


def require_world(data_dir: Path) -> None:
    """Fail with one clear line when the data directory is missing or incomplete."""
    from nextbest.core.features import VIEWS

    tables = data_dir / "feature_tables"
    if not data_dir.is_dir():
        raise DataError(f"data directory {data_dir} does not exist; run `nextbest data generate` first")
    missing = [v.table for v in VIEWS if not (tables / f"{v.table}.parquet").is_file()]
    if missing:
        raise DataError(f"data directory {data_dir} lacks feature tables {missing}; run `nextbest data generate`")


def source_key_kind(data_dir: Path) -> str:
    """How the feature tables key customers: ``"string"`` (the canonical form, what ``nextbest data generate``
    writes) or ``"integer"`` (tables written before string customer ids). Point-in-time joins need entity rows of
    the same type; a mix of both is refused with the tables named."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nextbest.core.features import ENTITY, VIEWS

    kinds: dict[str, list[str]] = {}
    for spec in VIEWS:
        path = data_dir / "feature_tables" / f"{spec.table}.parquet"
        if not path.is_file():
            continue
        schema = pq.read_schema(path)
        if ENTITY not in schema.names:
            raise DataError(f"feature table {path} has no {ENTITY} column")
        kind = schema.field(ENTITY).type
        label = (
            "integer"
            if pa.types.is_integer(kind)
            else "string"
            if pa.types.is_string(kind) or pa.types.is_large_string(kind)
            else str(kind)
        )
        kinds.setdefault(label, []).append(spec.table)
    if len(kinds) > 1 or (kinds and not set(kinds) <= {"string", "integer"}):
        found = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(kinds.items()))
        raise DataError(f"feature tables in {data_dir} must all key {ENTITY} as strings (or all as integers): {found}")
    return next(iter(kinds), "string")


def apply(settings: Settings, data_dir: Path | None = None, notes: list[str] | None = None) -> list[str]:
    """Register every definition (and remove objects that no longer exist); returns the names applied. What the
    operator must do next (re-key an online store written with integer customer keys) is appended to ``notes``."""
    from feast import Entity, FeatureService, FeatureView
    from feast.on_demand_feature_view import OnDemandFeatureView

    data = data_dir or settings.data_dir
    assert data is not None
    require_world(data)
    store = open_store(settings)
    objects = definitions(data)
    wanted = {(type(o).__name__, o.name) for o in objects}
    stale: list[Any] = []
    rekeyed = False
    for kind, listing in (
        (FeatureService, store.list_feature_services),
        (OnDemandFeatureView, store.list_on_demand_feature_views),
        (FeatureView, store.list_feature_views),
        (Entity, store.list_entities),
    ):
        found = listing()
        stale.extend(o for o in found if (kind.__name__, o.name) not in wanted)
        if kind is Entity:
            rekeyed = any(o.name == "customer" and o.value_type.name != "STRING" for o in found)
    store.apply(objects, objects_to_delete=stale, partial=False)
    if rekeyed and notes is not None:
        notes.append(
            "customers are now keyed by string id (they were integers): run `nextbest features materialize` to "
            "re-key the online store; until then decisions find no features (degraded)"
        )
    return sorted(f"{type(o).__name__}:{o.name}" for o in objects)


def materialize(settings: Settings, end: datetime | None = None, days: float = 3650.0) -> tuple[datetime, datetime]:
    """Load the latest value of every view in (end - days, end] into the online store."""
    store = open_store(settings)
    if not store.list_feature_views():
        raise DataError("no feature views are registered; run `nextbest features apply` first")
    end_date = end or datetime.now(UTC)
    start_date = end_date - timedelta(days=days)
    store.materialize(start_date=start_date, end_date=end_date)
    return start_date, end_date
