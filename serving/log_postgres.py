"""The PostgreSQL decision log: shared by every replica of the service when one machine is not enough.

One connection per thread (a psycopg connection serves one statement at a time) in autocommit mode: every
write here is a single statement, which PostgreSQL commits before answering, so a write costs one round trip
instead of three (BEGIN, INSERT, COMMIT) and is durable when the method returns.

A broken connection (PostgreSQL restarted, the backend terminated, the network dropped) is replaced and the
operation retried once; that is safe because every write is idempotent (``ON CONFLICT DO NOTHING`` on its
id). While the server stays unreachable, calls fail fast with ``UnavailableError`` for a second after each
failed connect, so a decision does not wait on a dead server: the service spools and replays later.

Every statement is bounded: ``statement_timeout`` (5 s by default; ``?options=-c statement_timeout=...`` in
the URL overrides it) cancels a query stuck on a lock or a sick server, so a request never waits on it for
longer. Creating or migrating the schema and reading the whole log for retraining are exempt (they may
legitimately take minutes on a large log).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from nextbest.errors import DataError, UnavailableError
from nextbest.serving.decision_log import DEFAULT_PREFIX, DecisionLog, one_line
from nextbest.serving.log_history import postgres_schema
from nextbest.serving.log_sql import ADDED_DECISION_COLUMNS

T = TypeVar("T")
RETRY_CONNECT_AFTER_S = 1.0
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
              "connect_timeout": 5}  # fmt: skip
STATEMENT_TIMEOUT_MS = 5_000
log = logging.getLogger(__name__)


class PostgresDecisionLog(DecisionLog):
    placeholder = "%s"
    # A probe is one more round trip, and it makes a fresh customer's decision so cheap that a customer with
    # 10,000 decisions (probe + summaries) took 1.63x a fresh one's time, over the 1.5x bound: every customer
    # reads the summaries (1.36x). README, "Decision log", has both measurements.
    short_histories_by_row = False

    def __init__(self, conninfo: str, display_url: str, *, table_prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(display_url, table_prefix)
        self._conninfo = conninfo
        try:
            given = conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as exc:
            raise UnavailableError(f"decision log {display_url}: invalid URL: {one_line(exc)}") from exc
        # Named per table prefix, so operators (and tests) can find this log's sessions in pg_stat_activity.
        self.application_name = str(given.get("application_name") or f"nextbest-log:{table_prefix}")[:63]
        self._extra: dict[str, Any] = {} if "application_name" in given else {"application_name": self.application_name}
        # A server that vanishes (failover, a cut link) must not hang a request on a dead socket: TCP keepalives
        # find it within about a minute, and a connect gives up after 5 s (both overridable in the URL).
        for name, value in KEEPALIVES.items():
            if name not in given:
                self._extra[name] = value
        if "options" not in given:
            self._extra["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        self._unbounded_ops = threading.local()
        self._local = threading.local()
        self._conns: dict[int, tuple[threading.Thread, psycopg.Connection[Any]]] = {}
        self._conns_lock = threading.Lock()
        self._down_until = 0.0
        self._closed = False
        with self.unbounded():
            self._run(self._create_schema)

    @contextmanager
    def unbounded(self) -> Iterator[None]:
        """Statements this thread runs inside are exempt from the statement timeout (schema, retraining)."""
        self._unbounded_ops.on = True
        try:
            yield
        finally:
            self._unbounded_ops.on = False

    def training_rows(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        with self.unbounded():  # one long read of the whole window
            return super().training_rows(since, until)

    def _create_schema(self, cur: psycopg.Cursor[Any]) -> None:
        d, f = self.tables
        key = int.from_bytes(hashlib.sha1(d.encode()).digest()[:8], "big", signed=True)
        with cur.connection.transaction():  # replicas starting together must not race on CREATE TABLE
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {d} (decision_id TEXT PRIMARY KEY, request_id TEXT UNIQUE, "
                "customer_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, channel TEXT NOT NULL, "
                "action TEXT NOT NULL, action_channel TEXT, probability DOUBLE PRECISION NOT NULL, "
                "explored BOOLEAN NOT NULL, control BOOLEAN NOT NULL, degraded BOOLEAN NOT NULL, reason TEXT, "
                "model_version TEXT, ruleset_version TEXT, catalog_version TEXT, feature_service TEXT, "
                "features JSONB NOT NULL, scores JSONB NOT NULL, rule_hits JSONB NOT NULL, response JSONB NOT NULL, "
                "context JSONB NOT NULL DEFAULT '{}'::jsonb)"
            )
            for name, _, pg_type in ADDED_DECISION_COLUMNS:  # a log created by an older version
                cur.execute(f"ALTER TABLE {d} ADD COLUMN IF NOT EXISTS {name} {pg_type}")
            cur.execute(f"CREATE INDEX IF NOT EXISTS {d}_customer ON {d} (customer_id, created_at)")
            cur.execute(f"CREATE INDEX IF NOT EXISTS {d}_created ON {d} (created_at)")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {f} (feedback_id TEXT PRIMARY KEY, "
                f"decision_id TEXT NOT NULL REFERENCES {d} (decision_id), customer_id TEXT NOT NULL, "
                "created_at DOUBLE PRECISION NOT NULL, type TEXT NOT NULL "
                "CHECK (type IN ('impression', 'click', 'conversion', 'dismissed')), revenue DOUBLE PRECISION, "
                "payload JSONB NOT NULL)"
            )
            cur.execute(f"CREATE INDEX IF NOT EXISTS {f}_decision ON {f} (decision_id)")
            cur.execute(f"CREATE INDEX IF NOT EXISTS {f}_customer ON {f} (customer_id)")
            self._migrate_ids(cur)
            postgres_schema(cur, self.history_names, d, f)  # contact-history summaries (after the migration)

    def _migrate_ids(self, cur: psycopg.Cursor[Any]) -> None:
        """A log created before string customer ids has BIGINT ``customer_id`` columns: changed to TEXT in place,
        each integer becoming its decimal text (its canonical form), indexes rebuilt by PostgreSQL. Runs inside the
        schema transaction, under its advisory lock: one replica migrates, the others find TEXT columns."""
        cur.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = ANY(%s) AND column_name = 'customer_id' AND data_type <> 'text' ORDER BY table_name",
            ([t.lower() for t in self.tables],),
        )
        tables = [row[0] for row in cur.fetchall()]
        for table in tables:
            cur.execute(f"ALTER TABLE {table} ALTER COLUMN customer_id TYPE TEXT USING customer_id::text")
        if tables:
            log.warning("decision log %s: customer_id columns of %s migrated to TEXT", self.url, ", ".join(tables))

    def _connect(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise UnavailableError(f"decision log {self.url} is closed")
        if time.monotonic() < self._down_until:
            raise UnavailableError(f"decision log {self.url} is unreachable (retrying shortly)")
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, **self._extra)
        except psycopg.Error as exc:
            self._down_until = time.monotonic() + RETRY_CONNECT_AFTER_S
            raise UnavailableError(f"decision log {self.url} is unreachable: {one_line(exc)}") from exc
        me = threading.current_thread()
        with self._conns_lock:  # close connections of threads that have ended (thread pools come and go)
            for ident, (thread, old) in list(self._conns.items()):
                if not thread.is_alive():
                    old.close()
                    del self._conns[ident]
            self._conns[me.ident or 0] = (me, conn)
        self._local.conn = conn
        return conn

    def _drop(self, conn: psycopg.Connection[Any]) -> None:
        self._local.conn = None
        with self._conns_lock:
            for ident, (_, held) in list(self._conns.items()):
                if held is conn:
                    del self._conns[ident]
        conn.close()

    def _run(self, op: Callable[[Any], T], write: bool = False) -> T:
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None) or self._connect()
            try:
                with conn.cursor() as cur:
                    if getattr(self._unbounded_ops, "on", False):
                        cur.execute("SET statement_timeout = 0")
                        try:
                            return op(cur)
                        finally:
                            if not (conn.broken or conn.closed):
                                try:
                                    cur.execute("RESET statement_timeout")  # the connection's default again
                                except psycopg.Error:
                                    self._drop(conn)  # never leave an unbounded connection behind
                    return op(cur)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not (conn.broken or conn.closed):  # e.g. a statement timeout: the connection is fine
                    raise UnavailableError(f"decision log {self.url}: {one_line(exc)}") from exc
                self._drop(conn)
                if attempt == 2:
                    raise UnavailableError(f"decision log {self.url}: connection lost: {one_line(exc)}") from exc
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                raise DataError(f"decision log {self.url}: invalid record: {one_line(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def backend_pids(self) -> list[int]:
        """PostgreSQL backend pids of this log's open connections (operators and tests)."""
        with self._conns_lock:
            return [conn.info.backend_pid for _, conn in self._conns.values() if not conn.closed]

    def ping(self) -> bool:
        try:
            return bool(self._run(lambda cur: cur.execute("SELECT 1").fetchone()) == (1,))
        except Exception:
            return False

    def close(self) -> None:
        self._closed = True
        with self._conns_lock:
            for _, conn in self._conns.values():
                conn.close()
            self._conns.clear()
        self._local = threading.local()
