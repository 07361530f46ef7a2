"""Feast's SQLite online store with two fixes for real-time use:

* monotonic writes: a row is only replaced by a row with the same or a newer event time, so a late event
  (or a materialization of older batch data) never overwrites what a newer real-time event wrote. Redis
  already behaves this way; Feast's SQLite store keeps whatever was written last;
* batched writes with ``executemany`` and WAL journaling, so materialization is fast and readers in other
  processes (the service) are not blocked by a writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig, _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.utils import to_naive_utc


class MonotonicSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    type: Literal["nextbest.features.online_store.MonotonicSqliteOnlineStore"] = (  # type: ignore[assignment]
        "nextbest.features.online_store.MonotonicSqliteOnlineStore"
    )


class MonotonicSqliteOnlineStore(SqliteOnlineStore):
    def _get_conn(self, config: RepoConfig) -> sqlite3.Connection:
        fresh = self._conn is None
        conn: sqlite3.Connection = super()._get_conn(config)
        if fresh:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
        return conn

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        if config.online_store.vector_enabled or getattr(config.online_store, "enable_openai_compatible_store", False):
            super().online_write_batch(config, table, data, progress)
            return
        conn = self._get_conn(config)
        name = _quote_id(_table_id(config.project, table, config.registry.enable_online_feature_view_versioning))
        sql = (
            f"INSERT INTO {name} (entity_key, feature_name, value, value_text, event_ts, created_ts) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(entity_key, feature_name) DO UPDATE SET value = excluded.value, "
            "value_text = excluded.value_text, event_ts = excluded.event_ts, created_ts = excluded.created_ts "
            f"WHERE excluded.event_ts >= {name}.event_ts"
        )
        version = config.entity_key_serialization_version
        rows: list[tuple[Any, ...]] = []
        for entity_key, values, timestamp, created_ts in data:
            key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
            ts = to_naive_utc(timestamp)
            created = to_naive_utc(created_ts) if created_ts is not None else None
            for feature_name, value in values.items():
                text, _ = extract_text_and_num(value, False)
                rows.append((key, feature_name, value.SerializeToString(), text, ts, created))
        with conn:
            conn.executemany(sql, rows)
        if progress:
            progress(len(data))
