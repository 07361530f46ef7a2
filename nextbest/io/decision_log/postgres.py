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
from nextbest.io.decision_log.base import DEFAULT_PREFIX, DecisionLog
from nextbest.io.decision_log.connections import ThreadConnections
from nextbest.io.decision_log.history_schema import postgres_schema
from nextbest.io.decision_log.records import one_line
from nextbest.io.decision_log.tables import DECISIONS, FEEDBACK, index_statements

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
        self._conns: ThreadConnections[psycopg.Connection[Any]] = ThreadConnections()
        self._down_until = 0.0
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
            cur.execute(f"CREATE TABLE IF NOT EXISTS {d} ({DECISIONS.ddl('postgres', d)})")
            for name, declared in DECISIONS.added_columns("postgres", d):  # a log created by an older version
                cur.execute(f"ALTER TABLE {d} ADD COLUMN IF NOT EXISTS {name} {declared}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {f} ({FEEDBACK.ddl('postgres', d)})")
            for sql in index_statements({"decisions": d, "feedback": f}):
                cur.execute(sql)
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
        if self._conns.closed:
            raise UnavailableError(f"decision log {self.url} is closed")
        if time.monotonic() < self._down_until:
            raise UnavailableError(f"decision log {self.url} is unreachable (retrying shortly)")
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, **self._extra)
        except psycopg.Error as exc:
            self._down_until = time.monotonic() + RETRY_CONNECT_AFTER_S
            raise UnavailableError(f"decision log {self.url} is unreachable: {one_line(exc)}") from exc
        return self._conns.adopt(conn)

    def _run(self, op: Callable[[Any], T], write: bool = False) -> T:
        for attempt in (1, 2):
            conn = self._conns.current() or self._connect()
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
                                    self._conns.drop(conn)  # never leave an unbounded connection behind
                    return op(cur)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                if not (conn.broken or conn.closed):  # e.g. a statement timeout: the connection is fine
                    raise UnavailableError(f"decision log {self.url}: {one_line(exc)}") from exc
                self._conns.drop(conn)
                if attempt == 2:
                    raise UnavailableError(f"decision log {self.url}: connection lost: {one_line(exc)}") from exc
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                raise DataError(f"decision log {self.url}: invalid record: {one_line(exc)}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _transaction(self, cur: psycopg.Cursor[Any]) -> Iterator[None]:
        with cur.connection.transaction():
            yield

    def backend_pids(self) -> list[int]:
        """PostgreSQL backend pids of this log's open connections (operators and tests)."""
        return [conn.info.backend_pid for conn in self._conns.all() if not conn.closed]

    def close(self) -> None:
        self._conns.close_all()
