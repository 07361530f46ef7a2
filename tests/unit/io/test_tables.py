"""The decision log's tables are declared once (nextbest/io/decision_log/tables.py); both backends' DDL is
rendered from that spec and must declare what the hand-written DDL of earlier versions declared."""

from __future__ import annotations

from nextbest.io.decision_log import FEEDBACK_TYPES
from nextbest.io.decision_log.sql import DECISION_COLUMNS, FEEDBACK_COLUMNS
from nextbest.io.decision_log.tables import DECISIONS, FEEDBACK, index_statements

# The DDL the backends wrote by hand before the spec (the first release's columns).
SQLITE_DECISIONS = (
    "decision_id TEXT PRIMARY KEY, request_id TEXT UNIQUE, customer_id TEXT NOT NULL, created_at REAL NOT NULL, "
    "channel TEXT NOT NULL, action TEXT NOT NULL, action_channel TEXT, probability REAL NOT NULL, "
    "explored INTEGER NOT NULL, control INTEGER NOT NULL, degraded INTEGER NOT NULL, reason TEXT, model_version TEXT, "
    "ruleset_version TEXT, catalog_version TEXT, feature_service TEXT, features TEXT NOT NULL, scores TEXT NOT NULL, "
    "rule_hits TEXT NOT NULL, response TEXT NOT NULL"
)
POSTGRES_DECISIONS = (
    "decision_id TEXT PRIMARY KEY, request_id TEXT UNIQUE, "
    "customer_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, channel TEXT NOT NULL, "
    "action TEXT NOT NULL, action_channel TEXT, probability DOUBLE PRECISION NOT NULL, "
    "explored BOOLEAN NOT NULL, control BOOLEAN NOT NULL, degraded BOOLEAN NOT NULL, reason TEXT, "
    "model_version TEXT, ruleset_version TEXT, catalog_version TEXT, feature_service TEXT, "
    "features JSONB NOT NULL, scores JSONB NOT NULL, rule_hits JSONB NOT NULL, response JSONB NOT NULL"
)
SQLITE_FEEDBACK = (
    "feedback_id TEXT PRIMARY KEY, decision_id TEXT NOT NULL REFERENCES d (decision_id), "
    "customer_id TEXT NOT NULL, created_at REAL NOT NULL, type TEXT NOT NULL "
    "CHECK (type IN ('impression', 'click', 'conversion', 'dismissed')), revenue REAL, payload TEXT NOT NULL"
)
POSTGRES_FEEDBACK = (
    "feedback_id TEXT PRIMARY KEY, "
    "decision_id TEXT NOT NULL REFERENCES d (decision_id), customer_id TEXT NOT NULL, "
    "created_at DOUBLE PRECISION NOT NULL, type TEXT NOT NULL "
    "CHECK (type IN ('impression', 'click', 'conversion', 'dismissed')), revenue DOUBLE PRECISION, "
    "payload JSONB NOT NULL"
)
ADDED = {
    "sqlite": [("context", "TEXT NOT NULL DEFAULT '{}'"), ("rule_ids", "TEXT"), ("request_hash", "TEXT")],
    "postgres": [("context", "JSONB NOT NULL DEFAULT '{}'::jsonb"), ("rule_ids", "TEXT"), ("request_hash", "TEXT")],
}


def test_first_release_columns_render_as_the_hand_written_ddl() -> None:
    assert DECISIONS.ddl("sqlite", "d", added=False) == SQLITE_DECISIONS
    assert DECISIONS.ddl("postgres", "d", added=False) == POSTGRES_DECISIONS
    assert FEEDBACK.ddl("sqlite", "d") == SQLITE_FEEDBACK
    assert FEEDBACK.ddl("postgres", "d") == POSTGRES_FEEDBACK


def test_added_columns_and_full_ddl() -> None:
    for dialect in ("sqlite", "postgres"):
        assert DECISIONS.added_columns(dialect, "d") == ADDED[dialect]
        full = DECISIONS.ddl(dialect, "d")
        assert full.startswith(DECISIONS.ddl(dialect, "d", added=False) + ", context ")
        assert full.endswith("rule_ids TEXT, request_hash TEXT")


def test_insert_columns_come_from_the_spec() -> None:
    assert DECISION_COLUMNS[-1] == "context" and "rule_ids" not in DECISION_COLUMNS
    assert len(DECISION_COLUMNS) == len(DECISIONS.columns) - 2
    assert FEEDBACK_COLUMNS == ("feedback_id", "decision_id", "customer_id", "created_at", "type", "revenue", "payload")
    check = next(c for c in FEEDBACK.columns if c.name == "type").constraint
    assert all(f"'{t}'" in check for t in FEEDBACK_TYPES)


def test_indexes() -> None:
    assert index_statements({"decisions": "p_decisions", "feedback": "p_feedback"}) == [
        "CREATE INDEX IF NOT EXISTS p_decisions_customer ON p_decisions (customer_id, created_at)",
        "CREATE INDEX IF NOT EXISTS p_decisions_created ON p_decisions (created_at)",
        "CREATE INDEX IF NOT EXISTS p_feedback_decision ON p_feedback (decision_id)",
        "CREATE INDEX IF NOT EXISTS p_feedback_customer ON p_feedback (customer_id)",
    ]
