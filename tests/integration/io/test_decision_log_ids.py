"""String customer ids in the decision log, and logs created before them (integer ``customer_id`` columns:
``INTEGER`` on SQLite, ``BIGINT`` on PostgreSQL) migrated when the new code opens them, on both backends."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from nextbest.io.decision_log import DecisionLog, DecisionRecord, FeedbackRecord, open_decision_log
from nextbest.io.decision_log.sql import DECISION_COLUMNS, encode_decision, statements
from tests.integration.io.test_decision_log import T0, decision

# The schema of the previous release, verbatim (the sqlite.py and postgres.py backends before string ids).
OLD_SQLITE = (
    "CREATE TABLE {d} (decision_id TEXT PRIMARY KEY, request_id TEXT UNIQUE, "
    "customer_id INTEGER NOT NULL, created_at REAL NOT NULL, channel TEXT NOT NULL, action TEXT NOT NULL, "
    "action_channel TEXT, probability REAL NOT NULL, explored INTEGER NOT NULL, control INTEGER NOT NULL, "
    "degraded INTEGER NOT NULL, reason TEXT, model_version TEXT, ruleset_version TEXT, catalog_version TEXT, "
    "feature_service TEXT, features TEXT NOT NULL, scores TEXT NOT NULL, rule_hits TEXT NOT NULL, "
    "response TEXT NOT NULL, context TEXT NOT NULL DEFAULT '{{}}')",
    "ALTER TABLE {d} ADD COLUMN rule_ids TEXT",
    "CREATE INDEX {d}_customer ON {d} (customer_id, created_at)",
    "CREATE INDEX {d}_created ON {d} (created_at)",
    "CREATE TABLE {f} (feedback_id TEXT PRIMARY KEY, "
    "decision_id TEXT NOT NULL REFERENCES {d} (decision_id), customer_id INTEGER NOT NULL, "
    "created_at REAL NOT NULL, type TEXT NOT NULL "
    "CHECK (type IN ('impression', 'click', 'conversion', 'dismissed')), revenue REAL, payload TEXT NOT NULL)",
    "CREATE INDEX {f}_decision ON {f} (decision_id)",
    "CREATE INDEX {f}_customer ON {f} (customer_id)",
)
OLD_POSTGRES = (
    "CREATE TABLE {d} (decision_id TEXT PRIMARY KEY, request_id TEXT UNIQUE, "
    "customer_id BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL, channel TEXT NOT NULL, "
    "action TEXT NOT NULL, action_channel TEXT, probability DOUBLE PRECISION NOT NULL, "
    "explored BOOLEAN NOT NULL, control BOOLEAN NOT NULL, degraded BOOLEAN NOT NULL, reason TEXT, "
    "model_version TEXT, ruleset_version TEXT, catalog_version TEXT, feature_service TEXT, "
    "features JSONB NOT NULL, scores JSONB NOT NULL, rule_hits JSONB NOT NULL, response JSONB NOT NULL, "
    "context JSONB NOT NULL DEFAULT '{{}}'::jsonb)",
    "ALTER TABLE {d} ADD COLUMN IF NOT EXISTS rule_ids TEXT",
    "CREATE INDEX {d}_customer ON {d} (customer_id, created_at)",
    "CREATE INDEX {d}_created ON {d} (created_at)",
    "CREATE TABLE {f} (feedback_id TEXT PRIMARY KEY, "
    "decision_id TEXT NOT NULL REFERENCES {d} (decision_id), customer_id BIGINT NOT NULL, "
    "created_at DOUBLE PRECISION NOT NULL, type TEXT NOT NULL "
    "CHECK (type IN ('impression', 'click', 'conversion', 'dismissed')), revenue DOUBLE PRECISION, "
    "payload JSONB NOT NULL)",
    "CREATE INDEX {f}_decision ON {f} (decision_id)",
    "CREATE INDEX {f}_customer ON {f} (customer_id)",
)


def _old_rows() -> tuple[list[DecisionRecord], list[FeedbackRecord]]:
    """Decisions and feedback as the previous release wrote them: integer customer ids (the same every call)."""
    ds = [
        decision(customer_id=7, at=T0, request_id="old-1", decision_id="old-a"),
        decision(customer_id=7, at=T0 + 10, decision_id="old-b"),
        decision(customer_id=123_456_789_012, at=T0 + 20, action="no_action", action_channel=None, decision_id="old-c"),
    ]
    fbs = [
        FeedbackRecord("fb-1", ds[0].decision_id, 7, T0 + 60, "impression", None, {}),
        FeedbackRecord("fb-2", ds[0].decision_id, 7, T0 + 90, "conversion", 42.5, {}),
    ]
    return ds, fbs


def _old_values(rec: DecisionRecord | FeedbackRecord) -> tuple[Any, ...]:
    """The row the previous release bound: ``int(customer_id)`` (its encoder's only difference for these rows)."""
    if isinstance(rec, DecisionRecord):
        row = list(encode_decision(rec.__dict__))[:-1]  # that release had no request_hash column
        row[2] = int(rec.customer_id)
        return tuple(row)
    return (rec.feedback_id, rec.decision_id, int(rec.customer_id), rec.created_at, rec.type, rec.revenue, "{}")


def _old_insert(d: str, mark: str) -> str:
    """The decision insert of the previous release (no request_hash column)."""
    marks = ", ".join([mark] * (len(DECISION_COLUMNS) + 1))
    return f"INSERT INTO {d} ({', '.join(DECISION_COLUMNS)}, rule_ids) VALUES ({marks})"


def _write_old(execute: Callable[[str, tuple[Any, ...]], None], d: str, f: str, mark: str) -> None:
    sql = {k: v.replace("?", mark) for k, v in statements(d, f).items()}
    ds, fbs = _old_rows()
    for rec in ds:
        execute(_old_insert(d, mark), _old_values(rec))
    for fb in fbs:
        execute(sql["insert_feedback"], _old_values(fb))


def _check_migrated(log: DecisionLog) -> None:
    ds, _ = _old_rows()
    # The same decisions read back, ids as their canonical text.
    for rec in ds:
        got = log.get(rec.decision_id)
        assert got is not None and got.customer_id == str(rec.customer_id)
        assert got == rec  # the record canonicalises its id too: everything else is exactly as stored
    assert log.find_by_request("old-1") == ds[0]
    assert log.counts() == {"decisions": 3, "feedback": 2}
    # Contact history and activity by either form of the id.
    contacts = log.contacts("7", 0)
    assert contacts == log.contacts(7, 0)
    assert [(c[0], c[3]) for c in contacts] == [
        (int(T0), "sent"), (int(T0 + 10), "sent"), (int(T0 + 60), "impression"), (int(T0 + 90), "conversion"),
    ]  # fmt: skip
    activity = log.customer_activity("7")
    assert [a["decision_id"] for a in activity] == [ds[1].decision_id, ds[0].decision_id]
    assert activity[1]["orders"] == 1 and activity[1]["revenue"] == 42.5 and activity[1]["customer_id"] == "7"
    assert [a["customer_id"] for a in log.activity(0)] == ["7", "7", "123456789012"]
    rows = {r["decision_id"]: r for r in log.training_rows()}
    assert rows[ds[0].decision_id]["customer_id"] == "7" and rows[ds[0].decision_id]["converted"] == 1
    # New feedback on an old decision: the owner check compares canonical ids.
    assert log.record_feedback(FeedbackRecord(uuid.uuid4().hex, ds[1].decision_id, "7", T0 + 99, "click"))
    # String ids alongside, including ones an integer column would have mangled.
    for cid in ("C0112906", "007", "9f1c1c5e-8a4e-4f7e-b7a9-3f3c2d7e9a10", "1e5"):
        new = decision(customer_id=cid, at=T0 + 30)
        assert log.record_decision(new) == (new, True)
        assert log.get(new.decision_id).customer_id == cid  # type: ignore[union-attr]
        assert log.record_feedback(FeedbackRecord(uuid.uuid4().hex, new.decision_id, cid, T0 + 40, "click"))
        assert [c[3] for c in log.contacts(cid, 0)] == ["sent", "click"]
    assert log.contacts("7.0", 0) == [] and log.contacts("07", 0) == []  # other strings are other customers
    assert log.counts() == {"decisions": 7, "feedback": 7}


def test_an_integer_sqlite_log_is_migrated_on_open(tmp_path: Path) -> None:
    path = tmp_path / "decisions.db"
    d, f = "nextbest_decisions", "nextbest_feedback"
    with sqlite3.connect(path) as conn:
        for ddl in OLD_SQLITE:
            conn.execute(ddl.format(d=d, f=f))
        _write_old(lambda sql, row: conn.execute(sql, row), d, f, "?")
    log = open_decision_log(f"sqlite:///{path}")
    try:
        with sqlite3.connect(path) as conn:
            for table in (d, f):
                kinds = {r[1]: r[2] for r in conn.execute(f"PRAGMA table_info({table})")}
                assert kinds["customer_id"] == "TEXT", table
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
            assert {f"{d}_customer", f"{d}_created", f"{f}_decision", f"{f}_customer"} <= indexes
            stored = conn.execute(f"SELECT typeof(customer_id), customer_id FROM {d} ORDER BY created_at").fetchall()
            assert stored == [("text", "7"), ("text", "7"), ("text", "123456789012")]
        _check_migrated(log)
        # Foreign keys are on again after the swap (they were off for it).
        assert log._run(lambda cur: cur.execute("PRAGMA foreign_keys").fetchone()) == (1,)
    finally:
        log.close()
    again = open_decision_log(f"sqlite:///{path}")  # opening a migrated log changes nothing
    try:
        assert again.counts() == {"decisions": 7, "feedback": 7}
    finally:
        again.close()


def test_workers_opening_an_older_sqlite_log_at_once_migrate_it_once(tmp_path: Path) -> None:
    """Several workers start on one old log: one migrates (seconds for a large log), the others wait and find it
    done; every row survives once."""
    import subprocess
    import sys

    path = tmp_path / "decisions.db"
    d, f = "nextbest_decisions", "nextbest_feedback"
    n = 20_000
    with sqlite3.connect(path) as conn:
        for ddl in OLD_SQLITE:
            conn.execute(ddl.format(d=d, f=f))
        rows = [_old_values(decision(customer_id=i % 997 + 1, at=T0 + i, decision_id=f"d{i}")) for i in range(n)]
        conn.executemany(_old_insert(d, "?"), rows)
    script = (
        "import sys; from nextbest.io.decision_log import open_decision_log; "
        "log = open_decision_log(sys.argv[1]); print(log.counts()['decisions'], len(log.contacts('5', 0)))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, f"sqlite:///{path}"], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    expected = str(sum(1 for i in range(n) if i % 997 + 1 == 5))
    assert outputs == [[str(n), expected]] * 3
    with sqlite3.connect(path) as conn:
        assert {r[1]: r[2] for r in conn.execute(f"PRAGMA table_info({d})")}["customer_id"] == "TEXT"
        assert conn.execute(f"SELECT COUNT(*) FROM {d}").fetchone() == (n,)


def test_an_older_sqlite_log_without_later_columns_is_migrated(tmp_path: Path) -> None:
    """A log from before ``rule_ids`` (and its index set): columns are added and ids migrated in one open."""
    path = tmp_path / "decisions.db"
    d, f = "nextbest_decisions", "nextbest_feedback"
    with sqlite3.connect(path) as conn:
        for ddl in (OLD_SQLITE[0], OLD_SQLITE[4]):
            conn.execute(ddl.format(d=d, f=f))
        rec = decision(customer_id=55)
        row = _old_values(rec)[:-1]  # no rule_ids column yet
        conn.execute(f"INSERT INTO {d} ({', '.join(DECISION_COLUMNS)}) VALUES ({', '.join('?' * len(row))})", row)
    log = open_decision_log(f"sqlite:///{path}")
    try:
        assert log.get(rec.decision_id) == rec and log.get(rec.decision_id).customer_id == "55"  # type: ignore[union-attr]
        assert log.customer_activity(55)[0]["shadow_hits"] == ["no_promo_open_ticket"]  # parsed from rule_hits
    finally:
        log.close()


def test_an_integer_postgres_log_is_migrated_on_open(postgres_log_url: str) -> None:
    import psycopg

    parts = urlsplit(postgres_log_url)
    prefix = dict(parse_qsl(parts.query))["table_prefix"]
    base = postgres_log_url.split("?", 1)[0]
    d, f = f"{prefix}decisions", f"{prefix}feedback"
    with psycopg.connect(base, autocommit=True) as conn:
        for ddl in OLD_POSTGRES:
            conn.execute(ddl.format(d=d, f=f))
        _write_old(lambda sql, row: conn.execute(sql, row), d, f, "%s")  # type: ignore[arg-type]
        kinds = conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = ANY(%s) AND column_name = "
            "'customer_id'",
            ([d, f],),
        ).fetchall()
        assert kinds == [("bigint",), ("bigint",)]
    log = open_decision_log(postgres_log_url)
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            kinds = conn.execute(
                "SELECT table_name, data_type FROM information_schema.columns WHERE table_name = ANY(%s) "
                "AND column_name = 'customer_id' ORDER BY table_name",
                ([d, f],),
            ).fetchall()
            assert kinds == [(d, "text"), (f, "text")]
            plan = conn.execute(f"EXPLAIN SELECT 1 FROM {d} WHERE customer_id = '7' AND created_at > 0").fetchall()
            assert plan  # the query plans against the rebuilt index
        _check_migrated(log)
    finally:
        log.close()
    again = open_decision_log(postgres_log_url)
    try:
        assert again.counts() == {"decisions": 7, "feedback": 7}
    finally:
        again.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_customer_ids_are_text_on_a_new_log(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_log_url")
    log = open_decision_log(url)
    try:
        a, b = decision(customer_id=42), decision(customer_id="42")
        assert a.customer_id == b.customer_id == "42"  # one customer, one canonical form
        log.record_decision(a)
        log.record_decision(b)
        assert len(log.contacts(42, 0)) == len(log.contacts("42", 0)) == 2
        assert log.customer_activity("042") == [] and len(log.customer_activity(42)) == 2
    finally:
        log.close()
