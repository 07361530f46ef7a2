"""The SQLite decision log: the embedded default, one file under ``NEXTBEST_HOME``.

WAL journal with ``synchronous=NORMAL``: a committed write survives a crash of the process (the service
being killed), and readers never block the writer. ``synchronous=FULL`` also survives power loss at about
twice the write cost.

Threads: each thread has its own connection (reads run in parallel under WAL) and this process's writers
take one lock, because SQLite allows one writer at a time and its busy handler waits by sleeping and polling,
which under contention costs milliseconds where a lock hand-off costs microseconds (``benchmarks/
decision_log.py`` measures both). ``busy_timeout`` still covers writers in other processes (several workers).

Checkpoints (copying the WAL back into the database file) run in a background thread every second, off the
request path: left to SQLite, the write that crosses the WAL's size threshold does it, a ~3.5 ms stall on one
decision in about a hundred (the p99). ``wal_autocheckpoint`` stays set, high, as the bound should the thread
fall behind.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from nextbest.errors import DataError, UnavailableError
from nextbest.io.decision_log.base import DEFAULT_PREFIX, DecisionLog
from nextbest.io.decision_log.connections import ThreadConnections
from nextbest.io.decision_log.history_schema import sqlite_schema
from nextbest.io.decision_log.records import one_line
from nextbest.io.decision_log.tables import DECISIONS, FEEDBACK, index_statements

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_EVERY_S = 1.0
AUTOCHECKPOINT_PAGES = 10_000  # ~40 MB of WAL: only reached if the background checkpoint falls behind
MIGRATION_WAIT_MS = 30 * 60_000
log = logging.getLogger(__name__)
# Customer ids are TEXT: opaque strings in their canonical form (nextbest.core.ids); older logs are migrated.


class SqliteDecisionLog(DecisionLog):
    def __init__(
        self, path: str | Path, *, table_prefix: str = DEFAULT_PREFIX, synchronous: str = "NORMAL",
        write_lock: bool = True,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        super().__init__(f"sqlite:///{self.path}", table_prefix)
        self._synchronous = synchronous
        self._write_lock: threading.Lock | None = threading.Lock() if write_lock else None
        self._conns: ThreadConnections[sqlite3.Connection] = ThreadConnections()
        self._stop = threading.Event()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnavailableError(f"decision log {self.url}: cannot create its directory: {one_line(exc)}") from exc
        self._run(self._create_schema, write=True)
        threading.Thread(target=self._checkpoints, name="nextbest-sqlite-checkpoint", daemon=True).start()

    def _checkpoints(self) -> None:
        """Every second, a passive checkpoint on a connection of its own (it never waits for readers or
        writers, and sqlite3 releases the GIL while it copies and syncs)."""
        conn: sqlite3.Connection | None = None
        while not self._stop.wait(CHECKPOINT_EVERY_S):
            try:
                if conn is None:
                    uri = f"file:{quote(str(self.path))}?mode=rw"  # never creates a file that went away
                    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # busy, or the file went away: the next tick tries again
                log.debug("decision log %s: checkpoint skipped: %s", self.url, exc)
        if conn is not None:
            conn.close()

    def _create_schema(self, cur: sqlite3.Cursor) -> None:
        # Another worker may be migrating an older log (about 6.5 s per 100,000 decisions): wait for it.
        cur.execute(f"PRAGMA busy_timeout={MIGRATION_WAIT_MS}")
        try:
            self._schema(cur)
        finally:
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")

    def _schema(self, cur: sqlite3.Cursor) -> None:
        d, f = self.tables
        cur.execute(f"CREATE TABLE IF NOT EXISTS {d} ({DECISIONS.ddl('sqlite', d)})")
        have = {row[1] for row in cur.execute(f"PRAGMA table_info({d})").fetchall()}
        for name, declared in DECISIONS.added_columns("sqlite", d):  # a log created by an older version
            if name not in have:
                try:
                    cur.execute(f"ALTER TABLE {d} ADD COLUMN {name} {declared}")
                except sqlite3.OperationalError as exc:  # another worker added it first
                    if "duplicate column" not in str(exc):
                        raise
        cur.execute(f"CREATE TABLE IF NOT EXISTS {f} ({FEEDBACK.ddl('sqlite', d)})")
        if self._integer_ids(cur):
            self._migrate_ids(cur)
        for sql in index_statements({"decisions": d, "feedback": f}):
            cur.execute(sql)
        sqlite_schema(cur, self.history_names, d, f)  # contact-history summaries (after any migration)

    def _integer_ids(self, cur: sqlite3.Cursor) -> list[str]:
        """Tables whose ``customer_id`` column was declared INTEGER (logs created before string customer ids)."""
        out = []
        for table in self.tables:
            kinds = {row[1]: str(row[2]).upper() for row in cur.execute(f"PRAGMA table_info({table})").fetchall()}
            if kinds.get("customer_id") != "TEXT":
                out.append(table)
        return out

    def _migrate_ids(self, cur: sqlite3.Cursor) -> None:
        """Rebuild the tables of an older log with a TEXT ``customer_id`` (SQLite cannot change a column's type),
        once, in one transaction: a copy of each table with the new declaration, then the old one replaced.

        With INTEGER affinity a string id that looks like a number would be stored as that number (``"007"`` read
        back as ``7``), so string ids need the TEXT column; integers stored so far are copied as their text, which is
        their canonical form. Foreign keys are off for the swap (the feedback table references the decisions table
        being replaced) and checked before the commit; other workers wait on the write lock and find it done."""
        conn = cur.connection
        conn.execute("PRAGMA foreign_keys=OFF")  # has no effect inside a transaction: set before BEGIN
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                tables = self._integer_ids(cur)  # again, under the lock: another worker may have migrated already
                d = self.tables[0]
                for table in tables:
                    fresh = f"{table}_text_ids"
                    ddl = (DECISIONS if table == d else FEEDBACK).ddl("sqlite", d)
                    conn.execute(f"DROP TABLE IF EXISTS {fresh}")
                    conn.execute(f"CREATE TABLE {fresh} ({ddl})")
                    old = [row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()]
                    new = {row[1] for row in conn.execute(f"PRAGMA table_info({fresh})").fetchall()}
                    cols = [c for c in old if c in new]
                    select = ", ".join("CAST(customer_id AS TEXT)" if c == "customer_id" else c for c in cols)
                    conn.execute(f"INSERT INTO {fresh} ({', '.join(cols)}) SELECT {select} FROM {table}")
                    conn.execute(f"DROP TABLE {table}")
                    conn.execute(f"ALTER TABLE {fresh} RENAME TO {table}")
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise sqlite3.IntegrityError(f"foreign key check failed after the migration: {broken[:3]}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.execute("PRAGMA foreign_keys=ON")
        if tables:
            log.warning("decision log %s: customer_id columns of %s migrated to TEXT", self.url, ", ".join(tables))

    def _connect(self) -> sqlite3.Connection:
        if self._conns.closed:
            raise UnavailableError(f"decision log {self.url} is closed")
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise UnavailableError(f"decision log {self.url} cannot be opened: {one_line(exc)}") from exc
        return self._conns.adopt(conn)

    def _run(self, op: Callable[[Any], T], write: bool = False) -> T:
        conn = self._conns.current() or self._connect()
        try:
            if write and self._write_lock is not None:
                with self._write_lock:
                    return op(conn.cursor())
            return op(conn.cursor())
        except sqlite3.IntegrityError as exc:  # a NOT NULL or CHECK constraint: the record itself is bad
            raise DataError(f"decision log {self.url}: invalid record: {one_line(exc)}") from exc
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            # Locked past busy_timeout, disk full or I/O error: the caller spools and retries later.
            raise UnavailableError(f"decision log {self.url}: {one_line(exc)}") from exc
        except sqlite3.ProgrammingError as exc:  # e.g. used after close()
            raise UnavailableError(f"decision log {self.url}: {one_line(exc)}") from exc

    @contextmanager
    def _transaction(self, cur: sqlite3.Cursor) -> Iterator[None]:
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def close(self) -> None:
        self._stop.set()
        self._conns.close_all()
