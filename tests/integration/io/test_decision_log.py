"""The decision log on both backends: SQLite in a temp dir and the real PostgreSQL server on this machine."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest

from nextbest.core.contact import HistoryBuilder
from nextbest.errors import ConfigError, DataError, NotFoundError, UnavailableError
from nextbest.io.decision_log import DecisionLog, DecisionRecord, FeedbackRecord, open_decision_log

T0 = 1_795_000_000.123456  # not a binary fraction: created_at must round-trip exactly
PROJECT = Path(__file__).resolve().parents[3]


def decision(customer_id: int = 7, at: float = T0, **kw: Any) -> DecisionRecord:
    fields: dict[str, Any] = {
        "decision_id": uuid.uuid4().hex,
        "request_id": None,
        "customer_id": customer_id,
        "created_at": at,
        "channel": "email",
        "action": "email_promo",
        "action_channel": "email",
        "probability": 0.95,
        "explored": False,
        "control": False,
        "degraded": False,
        "reason": None,
        "model_version": "3",
        "ruleset_version": "rules-abc",
        "catalog_version": "cat-def",
        "feature_service": "nba_v1",
        "features": {"recency_days": 12.5, "tier": "gold", "open_tickets": 0, "rfm": {"frequency": 4}},
        "scores": [{"action": "email_promo", "uplift": 0.02, "net_value": 1.2}, {"action": "no_action"}],
        "rule_hits": [{"rule_id": "no_promo_open_ticket", "action": "discount_10", "mode": "enforce"}],
        "response": {"decision_id": "x", "action": "email_promo", "candidates": [1, 2], "degraded": False},
    }
    fields.update(kw)
    return DecisionRecord(**fields)


def feedback(d: DecisionRecord, kind: str, at: float | None = None, **kw: Any) -> FeedbackRecord:
    at = d.created_at + 60 if at is None else at
    fields = {"feedback_id": uuid.uuid4().hex, "decision_id": d.decision_id, "customer_id": d.customer_id,
              "created_at": at, "type": kind, "revenue": None, "payload": {"source": "test"}}  # fmt: skip
    fields.update(kw)
    return FeedbackRecord(**fields)


def test_decision_round_trip(log: DecisionLog) -> None:
    d = decision(request_id="req-1", reason="exploration", explored=True)
    assert log.record_decision(d) == (d, True)
    assert log.get(d.decision_id) == d
    assert log.find_by_request("req-1") == d
    assert log.get("missing") is None and log.find_by_request("missing") is None
    assert log.counts() == {"decisions": 1, "feedback": 0}
    assert log.ping()


def test_numpy_values_and_non_finite_floats_are_stored_as_json(log: DecisionLog) -> None:
    features = {"a": np.float32(1.5), "b": float("nan"), "c": np.int64(3), "d": np.array([1, 2])}
    d = decision(customer_id=np.int64(8), probability=np.float64(0.5), features=features)
    assert log.record_decision(d)[1]
    assert log.get(d.decision_id).features == {"a": 1.5, "b": None, "c": 3, "d": [1, 2]}  # type: ignore[union-attr]
    with pytest.raises(DataError, match="invalid record"):
        log.record_decision(decision(channel=None))


def test_same_request_id_returns_the_stored_decision_and_logs_once(log: DecisionLog) -> None:
    first = decision(request_id="req-2")
    second = decision(request_id="req-2", action="sms_reminder", action_channel="sms")
    assert log.record_decision(first) == (first, True)
    assert log.record_decision(second) == (first, False)
    assert log.get(second.decision_id) is None
    # Re-recording a logged decision (the service replaying its spool) is a no-op, not an error.
    assert log.record_decision(first) == (first, False)
    spooled = decision(request_id=None)
    assert log.record_decision(spooled)[1] and log.record_decision(spooled) == (spooled, False)
    assert log.counts()["decisions"] == 2


def test_a_request_id_keeps_the_hash_of_its_request(log: DecisionLog) -> None:
    """What a replay is checked against (serving answers only the same request); records of older versions
    have none."""
    hashed = decision(request_id="req-hashed", request_hash="3f2a" * 8)
    assert log.record_decision(hashed) == (hashed, True)
    assert log.find_by_request("req-hashed").request_hash == "3f2a" * 8  # type: ignore[union-attr]
    racing = decision(request_id="req-hashed", request_hash="ffff" * 8)
    stored, created = log.record_decision(racing)
    assert not created and stored.request_hash == "3f2a" * 8 and stored.decision_id == hashed.decision_id
    old = decision(request_id="req-old")
    log.record_decision(old)
    assert log.find_by_request("req-old").request_hash is None  # type: ignore[union-attr]


def test_postgres_connections_use_keepalives_and_a_connect_timeout(postgres_log_url: str) -> None:
    with open_decision_log(postgres_log_url) as log:
        assert log.ping()
        params = log._conns.current().info.get_parameters()  # type: ignore[attr-defined]
        assert params["keepalives_idle"] == "30" and params["keepalives_count"] == "3"
        assert params["connect_timeout"] == "5"


def race(log: DecisionLog, request_id: str, threads: int = 8) -> list[tuple[DecisionRecord, bool]]:
    """``threads`` different decisions with one request_id, released at the same instant."""
    barrier = threading.Barrier(threads)
    results: list[tuple[DecisionRecord, bool]] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        mine = decision(customer_id=100, request_id=request_id, probability=i / 10)
        barrier.wait()
        try:
            results.append(log.record_decision(mine))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    return results


def test_concurrent_requests_with_one_request_id_yield_one_row(log: DecisionLog) -> None:
    rounds = 5
    for r in range(rounds):
        results = race(log, f"race-{r}")
        assert sum(created for _, created in results) == 1
        assert len(results) == 8 and all(stored == results[0][0] for stored, _ in results)
        assert log.find_by_request(f"race-{r}") == results[0][0]
    assert log.counts()["decisions"] == rounds


def test_feedback_for_an_unknown_decision_is_rejected(log: DecisionLog) -> None:
    ghost = decision()
    with pytest.raises(NotFoundError, match=f"^decision {ghost.decision_id} does not exist$"):
        log.record_feedback(feedback(ghost, "click"))
    assert log.counts()["feedback"] == 0


def test_duplicate_feedback_is_ignored_and_customer_mismatch_rejected(log: DecisionLog) -> None:
    d = decision(customer_id=9)
    log.record_decision(d)
    fb = feedback(d, "conversion", revenue=20.0)
    assert log.record_feedback(fb) is True
    assert log.record_feedback(fb) is False
    assert log.record_feedback(replace(fb, revenue=99.0)) is False  # same feedback_id: the first one stands
    with pytest.raises(DataError, match="belongs to customer 9, not 10"):
        log.record_feedback(feedback(d, "click", customer_id=10))
    with pytest.raises(DataError, match="purchase"):
        log.record_feedback(feedback(d, "purchase"))
    assert log.counts() == {"decisions": 1, "feedback": 1}
    assert log.training_rows()[0]["revenue"] == pytest.approx(20.0)


def test_contacts_are_history_builder_rows(log: DecisionLog) -> None:
    email = decision(customer_id=5, at=T0)
    sms = decision(customer_id=5, at=T0 + 100, action="sms_reminder", action_channel="sms")
    skipped = [
        decision(customer_id=5, at=T0 + 200, action="no_action", control=True),  # global control group
        decision(customer_id=5, at=T0 + 300, action="no_action"),  # the control action is not a contact
        decision(customer_id=5, at=T0 + 400, action="help_content", action_channel=None),  # not delivered
        decision(customer_id=6, at=T0 + 500),  # another customer
        decision(customer_id=5, at=T0 - 10_000),  # before the window
    ]
    for d in [email, sms, *skipped]:
        log.record_decision(d)
    log.record_feedback(feedback(email, "impression", at=T0 + 10))
    log.record_feedback(feedback(email, "click", at=T0 + 30))
    log.record_feedback(feedback(email, "click", at=T0 + 20))  # a second click: one row, at the first
    log.record_feedback(feedback(sms, "dismissed", at=T0 + 50))  # before its send (clock skew): at the send
    rows = log.contacts(5, since=T0 - 1)
    t = int(T0)
    assert rows == [
        (t, "email_promo", "email", "sent"),
        (t + 10, "email_promo", "email", "impression"),
        (t + 20, "email_promo", "email", "click"),
        (t + 100, "sms_reminder", "sms", "sent"),
        (t + 100, "sms_reminder", "sms", "ignored"),
    ]
    history = HistoryBuilder(("email", "sms", "push", "web", "app")).build(rows, t + 3_600)
    assert history["contacts_24h"] == 2
    assert history["ignored_streak"] == {"email": 0, "sms": 1, "push": 0, "web": 0, "app": 0}
    assert set(history["days_since_action"]) == {"email_promo", "sms_reminder"}  # type: ignore[arg-type]
    assert log.contacts(404, since=0) == []


def test_training_rows_aggregate_feedback_per_decision(log: DecisionLog) -> None:
    won = decision(customer_id=1, at=T0, features={"recency_days": 3.0, "action": "clash", "rfm": {"monetary": 80}})
    quiet = decision(customer_id=2, at=T0 + 1, action="discount_10", probability=0.05, explored=True)
    late = decision(customer_id=3, at=T0 + 1_000)
    for d in (won, quiet, late):
        log.record_decision(d)
    for kind, revenue in [("impression", None), ("click", None), ("conversion", 30.0), ("conversion", 12.5)]:
        log.record_feedback(feedback(won, kind, revenue=revenue))
    rows = log.training_rows(since=T0, until=T0 + 1_000)
    assert [r["decision_id"] for r in rows] == [won.decision_id, quiet.decision_id]
    first, second = rows
    assert (first["converted"], first["clicked"], first["impressed"], first["feedback_count"]) == (1, 1, 1, 4)
    assert first["revenue"] == pytest.approx(42.5) and first["outcome"] == "conversion"
    assert first["recency_days"] == 3.0 and first["rfm.monetary"] == 80 and first["feature.action"] == "clash"
    assert first["action"] == "email_promo" and first["propensity"] == first["probability"] == 0.95
    assert first["event_timestamp"].timestamp() == pytest.approx(T0)
    assert (second["converted"], second["revenue"], second["outcome"], second["explored"]) == (0, 0.0, "sent", True)
    assert second["model_version"] == "3" and second["ruleset_version"] == "rules-abc"
    assert len(log.training_rows()) == 3


def test_a_decision_survives_a_restart(url: str) -> None:
    """Written by a process that dies without closing anything, then read by a new instance."""
    d = decision(request_id="req-restart")
    code = (
        "import os, sys\n"
        "from nextbest.io.decision_log import DecisionRecord, open_decision_log\n"
        "log = open_decision_log(sys.argv[1])\n"
        f"log.record_decision(DecisionRecord(**{d.__dict__!r}))\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, url], check=True, cwd=PROJECT, timeout=60)
    with open_decision_log(url) as reopened:
        assert reopened.get(d.decision_id) == d
        assert reopened.record_decision(replace(d, decision_id="other")) == (d, False)


def test_closed_log_reports_unavailable(log: DecisionLog) -> None:
    log.close()
    assert log.ping() is False
    with pytest.raises(UnavailableError, match="closed"):
        log.record_decision(decision())


def test_concurrent_writers_lose_nothing(log: DecisionLog) -> None:
    threads, each = 8, 40
    errors: list[BaseException] = []

    def write(t: int) -> None:
        try:
            for i in range(each):
                d = decision(customer_id=t, at=T0 + i, request_id=f"w{t}-{i}")
                assert log.record_decision(d)[1]
                log.record_feedback(feedback(d, "impression"))
                log.contacts(t, since=T0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    pool = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    assert log.counts() == {"decisions": threads * each, "feedback": threads * each}
    assert len(log.contacts(3, since=0)) == 2 * each


def test_postgres_reconnects_after_its_connection_is_killed(postgres_log_url: str, postgres_url: str) -> None:
    import psycopg

    from nextbest.io.decision_log.postgres import PostgresDecisionLog

    with open_decision_log(postgres_log_url) as log:
        assert isinstance(log, PostgresDecisionLog)
        before = decision(request_id="before-kill")
        log.record_decision(before)
        pids = log.backend_pids()
        assert pids
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            killed = admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
            assert all(ok for (ok,) in killed.fetchall())
        time.sleep(0.05)
        after = decision(request_id="after-kill")
        assert log.record_decision(after) == (after, True)
        assert log.backend_pids() and log.backend_pids() != pids
        assert log.counts()["decisions"] == 2 and log.ping()


def test_postgres_outage_fails_fast_and_recovers(
    postgres_log_url: str, postgres_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL going away (and coming back) behind a proxy, as in a server restart."""
    from nextbest.io.decision_log import postgres as log_postgres

    monkeypatch.setattr(log_postgres, "RETRY_CONNECT_AFTER_S", 0.2)
    parts = urlsplit(postgres_log_url)
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{postgres_proxy.port}"))
    with open_decision_log(url) as log:
        log.record_decision(decision())
        postgres_proxy.stop()
        pending = decision()
        with pytest.raises(UnavailableError, match="unreachable") as down:
            log.record_decision(pending)
        assert "\n" not in str(down.value) and str(postgres_proxy.port) in str(down.value)
        started = time.perf_counter()
        assert log.ping() is False and time.perf_counter() - started < 0.1  # fails fast while down
        postgres_proxy.start()
        time.sleep(0.25)
        assert log.record_decision(pending) == (pending, True)
        assert log.counts()["decisions"] == 2


def test_bad_urls_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown scheme 'mysql'") as bad:
        open_decision_log("mysql://root@localhost/db")
    assert "\n" not in str(bad.value)
    with pytest.raises(ConfigError, match="absolute"):
        open_decision_log("sqlite:///relative/decisions.db")
    with pytest.raises(ConfigError, match="prefix"):
        open_decision_log(f"sqlite:///{tmp_path / 'x.db'}", table_prefix="drop table;")
    with pytest.raises(UnavailableError) as down:
        open_decision_log("postgresql://nextbest:s3cret@127.0.0.1:1/test")
    message = str(down.value)
    assert "127.0.0.1:1" in message and "s3cret" not in message and "\n" not in message


def test_sqlite_checkpoints_in_the_background_not_on_a_decision(tmp_path: Path) -> None:
    """Writes go to the WAL only (no decision pays for copying it back); a background thread checkpoints them
    into the database file within about a second."""
    db = tmp_path / "decisions.db"
    with open_decision_log(f"sqlite:///{db}") as log:
        time.sleep(1.5)  # the schema's own pages are checkpointed first
        before = db.stat().st_mtime_ns
        for _ in range(50):
            log.record_decision(decision(request_id=None))
        assert db.stat().st_mtime_ns == before  # the 50 writes touched only the WAL
        deadline = time.monotonic() + 5
        while db.stat().st_mtime_ns == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert db.stat().st_mtime_ns != before, "no background checkpoint"
        assert log.counts()["decisions"] == 50
