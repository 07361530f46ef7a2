"""Feast's online stores with the fixes real-time use needs.

SQLite (the embedded default):

* monotonic writes: a row is only replaced by a row with the same or a newer event time, so a late event
  (or a materialization of older batch data) never overwrites what a newer real-time event wrote; Feast's
  SQLite store keeps whatever was written last;
* batched writes with ``executemany`` and WAL journaling, so materialization is fast and readers in other
  processes (the service) are not blocked by a writer.

Redis (scale-out): Feast's store compares event times too, but reads them in one round trip and writes in
another, so two replicas can interleave and the older write can land last; and it drops a write whose event
time *equals* the stored one, so of two events in the same second only the first is kept. Here each row is
one Lua compare-and-set (atomic in Redis, same-or-newer wins, as on SQLite). The client reconnects at once
instead of redis-py's multi-second backoff, and after a failed call fails fast for ``retry_after_s``, so a
Redis outage costs a decision one short timeout at most and the service degrades instead of stalling.

Both stores also lend real-time events a lock per entity row (:meth:`entity_lock`): an event is a read, a change
and a write of the row, and two workers or replicas applying events to the same customer's row at once must
not both start from the same state (one change would be lost). SQLite takes a file lock (the processes of
one machine share the file); Redis a lock key with an expiry (every replica shares the server).
"""

from __future__ import annotations

import fcntl
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from feast import utils
from feast.feature_view import FeatureView
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key, extract_text_and_num
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, _versioned_fv_name
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig, _quote_id, _table_id
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.utils import to_naive_utc
from google.protobuf.timestamp_pb2 import Timestamp
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

_MAX_SQL_VARIABLES = 30_000
#: The rows Feast hands ``online_write_batch``: (entity key, values by feature, event time, created time).
WriteRows = list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]]


class MonotonicSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    type: Literal["nextbest.features.online_store.MonotonicSqliteOnlineStore"] = (
        "nextbest.features.online_store.MonotonicSqliteOnlineStore"  # type: ignore[assignment]
    )


class MonotonicSqliteOnlineStore(SqliteOnlineStore):
    _lock_folder: Path | None = None

    def _get_conn(self, config: RepoConfig) -> sqlite3.Connection:
        fresh = self._conn is None
        conn: sqlite3.Connection = super()._get_conn(config)
        if fresh:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
        return conn

    @contextmanager
    def entity_lock(self, config: RepoConfig, name: str, stripes: int = 256) -> Iterator[None]:
        """Exclude the other processes of this machine from the row ``name`` (an exclusive ``flock`` on one of
        ``stripes`` files beside the database; threads of one process must exclude each other themselves)."""
        folder = self._lock_folder
        if folder is None:  # once per store, not per event
            folder = self._lock_folder = Path(f"{self._get_db_path(config)}.locks")
            folder.mkdir(exist_ok=True)
        with (folder / f"{zlib.crc32(name.encode()) % stripes}.lock").open("a+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: WriteRows,
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

    def read_views(
        self, config: RepoConfig, reads: list[tuple[FeatureView, list[str]]], entity_keys: list[EntityKeyProto]
    ) -> list[list[tuple[datetime | None, dict[str, ValueProto] | None]]]:
        """``online_read`` of several views for the same entities in one query (``UNION ALL`` over the view
        tables; each key serialised once), one list of rows per view, as ``online_read`` returns them."""
        conn = self._get_conn(config)
        version = config.entity_key_serialization_version
        keys = [serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys]
        versioned = config.registry.enable_online_feature_view_versioning
        tables = [_quote_id(_table_id(config.project, table, versioned)) for table, _ in reads]
        step = max(1, _MAX_SQL_VARIABLES // max(1, len(reads)))  # SQLite binds at most 32,766 values
        rows: list[Any] = []
        for start in range(0, len(keys), step):
            chunk = keys[start : start + step]
            marks = ",".join("?" * len(chunk))
            # The event time as stored (Unix seconds; CAST: no per-row converter), converted once per distinct
            # value below: every feature of a view's row shares it.
            sql = " UNION ALL ".join(
                f"SELECT {i} AS v, entity_key, feature_name, value, CAST(event_ts AS INTEGER) AS ts "
                f"FROM {table} WHERE entity_key IN ({marks})"
                for i, table in enumerate(tables)
            )
            rows += conn.execute(sql, chunk * len(tables)).fetchall()
        wanted = [set(names) for _, names in reads]
        found: list[dict[bytes, tuple[datetime | None, dict[str, ValueProto]]]] = [{} for _ in reads]
        stamps: dict[int | None, datetime | None] = {None: None}
        parse = ValueProto.FromString
        for v, key, name, blob, ts in rows:
            if name not in wanted[v]:
                continue
            value = parse(blob)
            if ts in stamps:
                stamp = stamps[ts]
            else:  # as Feast's `timestamp` converter reads it (naive local time), taken as UTC like online_read's
                stamp = stamps[ts] = datetime.fromtimestamp(ts).replace(tzinfo=UTC)
            row = found[v].get(key)
            if row is None:
                found[v][key] = (stamp, {name: value})
            else:
                row[1][name] = value
        return [[found[v].get(key, (None, None)) for key in keys] for v in range(len(reads))]


# Compare-and-set of one entity's row of one view. The stored event time is Feast's protobuf ``Timestamp``
# (field 1 seconds, field 2 nanos, both varints); an older write is refused, the same or a newer one wins.
# KEYS[1] entity key; ARGV: ts field, new seconds, new nanos, key ttl (0 = none), then field/value pairs.
_COMPARE_AND_SET = """
local function stamp(s)
  local seconds, nanos, i = 0, 0, 1
  while i <= #s do
    local tag, value, scale, b = string.byte(s, i), 0, 1, 128
    while b >= 128 do
      i = i + 1
      b = string.byte(s, i)
      value = value + (b % 128) * scale
      scale = scale * 128
    end
    i = i + 1
    if tag == 8 then seconds = value elseif tag == 16 then nanos = value end
  end
  return seconds, nanos
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local s, n = stamp(old)
  local new_s, new_n = tonumber(ARGV[2]), tonumber(ARGV[3])
  if new_s < s or (new_s == s and new_n < n) then return 0 end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""


class MonotonicRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    type: Literal["nextbest.features.online_store.MonotonicRedisOnlineStore"] = (
        "nextbest.features.online_store.MonotonicRedisOnlineStore"  # type: ignore[assignment]
    )
    retries: int = 1
    """Immediate reconnects after a broken connection (a restarted Redis); timeouts are not retried."""
    retry_after_s: float = 1.0
    """After a connection error or timeout, calls fail at once for this long instead of waiting again."""


class MonotonicRedisOnlineStore(RedisOnlineStore):
    """Reads are Feast's; writes are atomic compare-and-sets; connection failures fail fast.

    ``online_write_batch_async`` (Feast's ``push_async``) is Feast's own, without the atomic guard."""

    _down_until: float = 0.0
    _script: Any = None

    def _get_client(self, online_store_config: Any) -> Any:
        fresh = self._client is None
        client = super()._get_client(online_store_config)
        if fresh and hasattr(client, "set_retry"):
            retries = getattr(online_store_config, "retries", 1)
            client.set_retry(Retry(NoBackoff(), retries, supported_errors=(RedisConnectionError,)))
        return client

    def _guarded(self, config: RepoConfig, call: Callable[[], Any]) -> Any:
        now = time.monotonic()
        if now < self._down_until:
            raise RedisConnectionError(f"Redis is unreachable (next attempt in {self._down_until - now:.1f} s)")
        try:
            return call()
        except (RedisConnectionError, RedisTimeoutError):
            self._down_until = time.monotonic() + getattr(config.online_store, "retry_after_s", 1.0)
            raise

    @contextmanager
    def entity_lock(self, config: RepoConfig, name: str, timeout: float = 5.0, wait: float = 2.0) -> Iterator[None]:
        """Exclude every other replica from the row ``name`` of this project: a Redis lock key that expires
        after ``timeout`` seconds (a replica that dies holding it blocks the row that long at most). Waiting
        longer than ``wait`` raises ``redis.exceptions.LockError`` (the caller spools the event)."""
        client = self._get_client(config.online_store)
        lock = client.lock(f"nextbest_lock:{config.project}:{name}", timeout=timeout, blocking_timeout=wait)
        if not self._guarded(config, lock.acquire):
            raise LockError(f"{name}: another writer held the lock for more than {wait} s")
        try:
            yield
        finally:
            # Expired (held past its timeout), or Redis went away after the write: the key expires on its own,
            # and raising here would spool an event that was applied (its replay could apply it twice).
            with suppress(LockError, RedisConnectionError, RedisTimeoutError):
                lock.release()

    def _read_hash_fields(self, config: RepoConfig, commands: list[tuple[bytes, list[Any]]]) -> list[list[Any]]:
        read = super()._read_hash_fields
        return self._guarded(config, lambda: read(config, commands))  # type: ignore[no-any-return]

    def read_views(
        self, config: RepoConfig, reads: list[tuple[FeatureView, list[str]]], entity_keys: list[EntityKeyProto]
    ) -> list[list[tuple[datetime | None, dict[str, ValueProto] | None]]]:
        """``online_read`` of several views for the same entities in one pipelined round trip (Feast's own
        ``get_online_features`` batches the same way), one list of rows per view."""
        keys = self._generate_redis_keys_for_entities(config, entity_keys)
        plan = []
        for table, requested in reads:
            view = _versioned_fv_name(table, config)
            names, fields = self._generate_hset_keys_for_features(
                table, list(requested), fv_name_override=view
            )  # it appends
            plan.append((view, names, fields))
        values = self._read_hash_fields(config, [(key, fields) for _, _, fields in plan for key in keys])
        n = len(keys)
        return [
            self._convert_redis_values_to_protobuf(values[i * n : (i + 1) * n], view, names)
            for i, (view, names, _) in enumerate(plan)
        ]

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: WriteRows,
        progress: Callable[[int], Any] | None,
    ) -> None:
        if config.online_store.skip_dedup:
            write = super().online_write_batch
            self._guarded(config, lambda: write(config, table, data, progress))
            return
        self._guarded(config, lambda: self._compare_and_set(config, table, data))
        if progress:
            progress(len(data))

    def _compare_and_set(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: WriteRows,
    ) -> int:
        """Write every row that is not older than the stored one; returns how many were written."""
        if not data:
            return 0
        client = self._get_client(config.online_store)
        if self._script is None:
            self._script = client.register_script(_COMPARE_AND_SET)
        view = _versioned_fv_name(table, config)
        ts_key = f"_ts:{view}"
        ttl = config.online_store.key_ttl_seconds or 0
        version = config.entity_key_serialization_version
        with client.pipeline(transaction=False) as pipe:
            for entity_key, values, timestamp, _ in data:
                ts = Timestamp()
                ts.FromDatetime(utils.make_tzaware(timestamp))
                args: list[Any] = [ts_key, ts.seconds, ts.nanos, ttl, ts_key, ts.SerializeToString()]
                for name, value in values.items():
                    args += [_mmh3(f"{view}:{name}"), value.SerializeToString()]
                key = _redis_key(config.project, entity_key, entity_key_serialization_version=version)
                self._script(keys=[key], args=args, client=pipe)
            return sum(int(r) for r in pipe.execute())
