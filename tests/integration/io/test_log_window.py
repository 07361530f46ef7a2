"""Reading decisions back in a time window (rule simulation), on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextbest.io.decision_log import DecisionLog, DecisionRecord, FeedbackRecord, open_decision_log

T0 = 1_795_000_000.25


@pytest.fixture(params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DecisionLog]:
    url = (
        f"sqlite:///{tmp_path / 'decisions.db'}"
        if request.param == "sqlite"
        else str(request.getfixturevalue("postgres_log_url"))
    )
    opened = open_decision_log(url)
    yield opened
    opened.close()


def record(i: int, at: float) -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"d{i:03d}-{uuid.uuid4().hex[:6]}", request_id=None, customer_id=100 + i % 7, created_at=at,
        channel="email", action="email_promo", action_channel="email", probability=0.9, explored=False,
        control=False, degraded=i % 10 == 0, reason=None, model_version="3", ruleset_version="r",
        catalog_version="c", feature_service="nba_v1", features={"open_tickets": i % 2, "tier": "gold"},
        scores=[{"action": "no_action", "propensity": 0.1, "value": 50.0, "cost": 0.0}], rule_hits=[],
        response={"greedy_action": "email_promo"},
    )  # fmt: skip


def test_window_is_newest_first_paged_and_carries_outcomes(log: DecisionLog) -> None:
    # 25 decisions, several sharing a timestamp (the cursor must break ties by id)
    records = [record(i, T0 + (i // 3)) for i in range(25)]
    for r in records:
        log.record_decision(r)
    conv = records[4]
    for kind, revenue in (("impression", None), ("conversion", 40.0), ("click", None)):
        fb = FeedbackRecord(uuid.uuid4().hex, conv.decision_id, conv.customer_id, conv.created_at + 5, kind, revenue)  # type: ignore[arg-type]
        log.record_feedback(fb)
    got = list(log.decisions(T0 + 1, T0 + 7, page_size=4))
    expected = sorted(
        (r for r in records if T0 + 1 <= r.created_at < T0 + 7), key=lambda r: (r.created_at, r.decision_id)
    )
    assert [d.decision_id for d, _ in got] == [r.decision_id for r in reversed(expected)]
    assert got[-1][0] == expected[0]  # the record round-trips (features, scores, response)
    outcomes = {d.decision_id: o for d, o in got}
    assert (outcomes[conv.decision_id].conversions, outcomes[conv.decision_id].revenue) == (1, 40.0)
    assert outcomes[conv.decision_id].feedback == 3
    assert all(o.feedback == 0 for k, o in outcomes.items() if k != conv.decision_id)
    assert [d.decision_id for d, _ in log.decisions(T0, limit=5, page_size=2)] == [
        r.decision_id for r in sorted(records, key=lambda r: (r.created_at, r.decision_id), reverse=True)[:5]
    ]
    assert list(log.decisions(T0 + 100)) == []
