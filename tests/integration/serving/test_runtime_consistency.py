"""One request, one version: a reload in the middle of a decision cannot mix policies or models within it.
The request context is logged with the decision, and logs created before the ``context`` column still open,
read and write (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from nextbest.io.decision_log import DecisionRecord, open_decision_log
from nextbest.serving.models import LoadedModel
from nextbest.serving.runtime import DecisionRuntime, build_runtime
from nextbest.serving.schemas import DecideRequest
from nextbest.settings import Settings

OLD_COLUMNS = (
    "decision_id TEXT PRIMARY KEY, request_id TEXT UNIQUE, customer_id {int} NOT NULL, created_at {real} NOT NULL, "
    "channel TEXT NOT NULL, action TEXT NOT NULL, action_channel TEXT, probability {real} NOT NULL, "
    "explored {bool} NOT NULL, control {bool} NOT NULL, degraded {bool} NOT NULL, reason TEXT, model_version TEXT, "
    "ruleset_version TEXT, catalog_version TEXT, feature_service TEXT, features {json} NOT NULL, "
    "scores {json} NOT NULL, rule_hits {json} NOT NULL, response {json} NOT NULL"
)
HITS = [
    {"rule_id": "quiet_hours", "action": "sms_reminder", "effect": "suppress", "message": "m", "mode": "shadow",
     "error": None},
    {"suppressed": {"action": "email_promo", "rule_ids": ["consent_email", "no_promo_open_ticket"],
                    "messages": ["a", "b"]}},
]  # fmt: skip
OLD_ROW = ("old-1", None, 7, 1.0, "email", "no_action", None, 1.0, False, False, True, "x", None, None, None, None,
           "{}", "[]", json.dumps(HITS), '{"action": "no_action"}')  # fmt: skip


@pytest.fixture(scope="module")
def runtime(settings: Settings, champion: Any) -> DecisionRuntime:
    return build_runtime(settings)


class _Gone:
    """A policy or model swapped in mid-request: touching it means the request read the live one again."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the request read the live components again ({name})")


def test_a_reload_during_a_request_does_not_mix_versions(runtime: DecisionRuntime) -> None:
    components = runtime.components
    policy, model = components.policy, components.model
    reader = runtime.backends.features
    read_one = reader.read_one

    def read_and_reload(customer_id: int, now: float | None = None) -> Any:
        components.policy = _Gone()  # type: ignore[assignment]
        components.model = LoadedModel(_Gone(), "999", "swapped")  # type: ignore[arg-type]
        return read_one(customer_id, now)

    reader.read_one = read_and_reload
    try:
        d = runtime.decide(DecideRequest(customer_id=12, channel="any"))
    finally:
        reader.read_one = read_one
        components.policy, components.model = policy, model
    assert not d.degraded, d.reason
    assert d.model_version == model.version and d.ruleset_version == policy.ruleset.version
    assert runtime.backends.log.get(d.decision_id).model_version == model.version  # type: ignore[union-attr]


def test_the_request_context_is_logged(runtime: DecisionRuntime) -> None:
    context = {"page": "checkout", "basket_value": 42.5, "app": True}
    d = runtime.decide(DecideRequest(customer_id=13, channel="any", context=context))
    stored = runtime.backends.log.get(d.decision_id)
    assert stored is not None and stored.context == context
    plain = runtime.decide(DecideRequest(customer_id=14, channel="any"))
    assert runtime.backends.log.get(plain.decision_id).context == {}  # type: ignore[union-attr]


def _record(**kw: Any) -> DecisionRecord:
    base: dict[str, Any] = {
        "decision_id": uuid.uuid4().hex, "request_id": None, "customer_id": 7, "created_at": 2.0, "channel": "email",
        "action": "email_promo", "action_channel": "email", "probability": 0.9, "explored": False, "control": False,
        "degraded": False, "reason": None, "model_version": "1", "ruleset_version": "r", "catalog_version": "c",
        "feature_service": "nba_v1", "features": {"age": 30}, "scores": [], "rule_hits": [],
        "response": {"action": "email_promo"}, "context": {"page": "home"},
    }  # fmt: skip
    return DecisionRecord(**{**base, **kw})


def _check_upgraded(log: Any) -> None:
    old = log.get("old-1")
    assert old is not None and old.context == {} and old.response == {"action": "no_action"}
    new = _record()
    assert log.record_decision(new) == (new, True)
    assert log.get(new.decision_id).context == {"page": "home"}
    # a spooled record written by an older version (no context key) still replays
    spooled = {k: v for k, v in new.__dict__.items() if k != "context"} | {"decision_id": "spooled-1"}
    log.record_decision(DecisionRecord(**spooled))
    assert log.get("spooled-1").context == {}
    assert {r.decision_id for r, _ in log.decisions(0.0)} >= {"old-1", new.decision_id}
    # rule ids for analytics: from the rule_ids column, or parsed from rule_hits in rows from before it
    hit = _record(rule_hits=HITS)
    log.record_decision(hit)
    activity = {r["decision_id"]: r for r in log.activity(0.0)}
    for decision_id in ("old-1", hit.decision_id):
        row = activity[decision_id]
        assert row["suppressed_by"] == ["consent_email", "no_promo_open_ticket"], decision_id
        assert row["shadow_hits"] == ["quiet_hours"], decision_id
    assert activity[new.decision_id]["suppressed_by"] == activity[new.decision_id]["shadow_hits"] == []


def test_a_sqlite_log_from_before_the_context_column_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        cols = OLD_COLUMNS.format(int="INTEGER", real="REAL", bool="INTEGER", json="TEXT")
        conn.execute(f"CREATE TABLE nextbest_decisions ({cols})")
        conn.execute(f"INSERT INTO nextbest_decisions VALUES ({', '.join('?' * len(OLD_ROW))})", OLD_ROW)
    log = open_decision_log(f"sqlite:///{path}")
    try:
        _check_upgraded(log)
    finally:
        log.close()
    again = open_decision_log(f"sqlite:///{path}")  # already upgraded: opens as is
    assert again.get("old-1") is not None
    again.close()


def test_a_postgres_log_from_before_the_context_column_is_upgraded(postgres_log_url: str) -> None:
    import psycopg

    prefix = postgres_log_url.split("table_prefix=")[1]
    with psycopg.connect(postgres_log_url.split("?")[0], autocommit=True) as conn:
        cols = OLD_COLUMNS.format(int="BIGINT", real="DOUBLE PRECISION", bool="BOOLEAN", json="JSONB")
        conn.execute(f"CREATE TABLE {prefix}decisions ({cols})")
        conn.execute(f"INSERT INTO {prefix}decisions VALUES ({', '.join(['%s'] * len(OLD_ROW))})", OLD_ROW)
    log = open_decision_log(postgres_log_url)
    try:
        _check_upgraded(log)
    finally:
        log.close()
