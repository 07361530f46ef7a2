"""The decision service on the scale-out backends: Feast on Redis, decision log and feedback on PostgreSQL,
over HTTP (the FastAPI app the BentoML service mounts). Redis outages (cut and hung) degrade decisions
instead of failing them, events are queued and applied in order when Redis is back, and a restart loses no
logged decision."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from nextbest.serving.app import create_app
from nextbest.serving.runtime import DecisionRuntime, build_runtime
from nextbest.settings import Settings
from tests.support.tcp_proxy import TcpProxy

SERVED: dict[str, dict[str, Any]] = {}  # decision_id -> response: every decision this module was served
USED: set[int] = {3, 17, 42, 77, 91, 93, 95, 404, 2_500, *range(2_900, 2_920)}  # the Redis store tests' customers


def decide(client: TestClient, **body: Any) -> dict[str, Any]:
    started = time.perf_counter()
    response = client.post("/decide", json={"channel": "email", **body})
    assert response.status_code == 200, response.text
    d: dict[str, Any] = response.json()
    d["_seconds"] = time.perf_counter() - started
    if not d["replayed"]:
        SERVED[d["decision_id"]] = d
    return d


def event(client: TestClient, customer: int, seconds: float = 0.0, **body: Any) -> str:
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    response = client.post("/events", json={"customer_id": customer, "timestamp": at.isoformat(), **body})
    assert response.status_code == 200, response.text
    return str(response.json()["outcome"])


def customer_with_email_consent(runtime: DecisionRuntime, no_cart: bool = False) -> int:
    """A customer no other test here uses, with email consent, no open ticket (and no open cart)."""
    reader = runtime.backends.features
    for customer in range(100, 600):
        if customer in USED:
            continue
        row = reader.read_one(customer)
        if (
            row.complete
            and row.values["email_opt_in"] == 1
            and row.values["open_tickets"] == 0
            and not (no_cart and row.values["cart_open"])
        ):
            USED.add(customer)
            return customer
    raise AssertionError("no customer with email consent and no open ticket in the test world")


def paused_by_ticket(d: dict[str, Any]) -> bool:
    return any(s["action"] == "email_promo" and "no_promo_open_ticket" in s["rule_ids"] for s in d["suppressed"])


def logged(settings: Settings, decision_ids: list[str]) -> dict[str, tuple[bool, str | None]]:
    """decision_id -> (degraded, reason), read from PostgreSQL directly."""
    assert settings.decision_log_url is not None
    url, _, query = settings.decision_log_url.partition("?table_prefix=")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT decision_id, degraded, reason FROM {query}decisions WHERE decision_id = ANY(%s)",
            (decision_ids,),
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_decisions_events_and_feedback_on_redis_and_postgres(
    client: TestClient, runtime: DecisionRuntime, service_settings: Settings, champion: Any
) -> None:
    customer = customer_with_email_consent(runtime)
    body = {"customer_id": customer, "candidates": ["email_promo"]}
    before = decide(client, **body)
    assert not before["degraded"] and before["reason"] is None
    assert before["model_version"] == str(champion.version) and before["feature_service"] == "nba_v1"
    assert not paused_by_ticket(before)

    assert event(client, customer, type="ticket_opened", ticket_id=880_001, severity=2) == "applied"
    during = decide(client, **body)  # the very next read sees the pushed event
    assert paused_by_ticket(during) and during["action"] == "no_action" and not during["degraded"]
    assert event(client, customer, 1, type="ticket_closed", ticket_id=880_001) == "applied"
    assert event(client, customer, -3_600, type="ticket_opened", ticket_id=880_002, severity=3) == "ignored_older"
    after = decide(client, **body, request_id=f"scaleout-{customer}")
    assert not paused_by_ticket(after)

    fb = {"decision_id": during["decision_id"], "type": "conversion", "revenue": 12.5, "customer_id": customer}
    assert client.post("/feedback", json=fb).json()["recorded"] is True
    rows = [r for r in runtime.backends.log.training_rows() if r["decision_id"] == during["decision_id"]]
    assert rows and rows[0]["converted"] == 1 and rows[0]["revenue"] == pytest.approx(12.5)
    assert set(logged(service_settings, [before["decision_id"], during["decision_id"], after["decision_id"]])) == {
        before["decision_id"],
        during["decision_id"],
        after["decision_id"],
    }


def wait_until_not_degraded(client: TestClient, customer: int, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        d = decide(client, customer_id=customer)
        if not d["degraded"] or time.monotonic() > deadline:
            return d
        time.sleep(0.1)


def test_redis_outage_degrades_queues_events_and_recovers_in_order(
    client: TestClient, runtime: DecisionRuntime, service_settings: Settings, proxy_restored: TcpProxy
) -> None:
    ticket_customer, cart_customer = customer_with_email_consent(runtime), customer_with_email_consent(runtime, True)
    assert not decide(client, customer_id=ticket_customer)["degraded"]

    proxy_restored.stop()  # Redis is gone: connections refused, open ones cut
    during = [decide(client, customer_id=c) for c in (ticket_customer, cart_customer) * 4]
    for d in during:
        assert d["degraded"] and d["reason"].startswith("online store unavailable")
        assert d["action"] == "no_action" and d["probability"] == 1.0
    seconds = [d["_seconds"] for d in during]
    # The first pays a cut connection's read and the reconnect (0.2 s each at most, features/environments/
    # redis.yaml), the rest fail fast; room for a loaded machine (a full CI run once took 0.556 s for the first).
    assert max(seconds) < 0.8 and statistics.median(seconds) < 0.1, [round(s, 3) for s in seconds]
    batch = client.post("/decide/batch", json={"requests": [{"customer_id": ticket_customer, "channel": "any"}] * 3})
    assert batch.status_code == 200 and all(d["degraded"] for d in batch.json()["decisions"])

    assert event(client, ticket_customer, type="ticket_opened", ticket_id=880_101, severity=2) == "queued"
    assert event(client, cart_customer, type="cart_abandoned", cart_value=42.0) == "queued"
    assert runtime.spool.pending("events") == 2
    fb = {"decision_id": during[0]["decision_id"], "type": "impression"}
    assert client.post("/feedback", json=fb).json()["recorded"] is True  # PostgreSQL is still up
    ready = client.get("/ready").json()
    assert ready["details"]["spooled"]["events"] == 2 and ready["details"]["online_store"] is False
    assert any(d.startswith("online store unreachable") for d in ready["degraded"]), ready["degraded"]
    degraded = logged(service_settings, [d["decision_id"] for d in during])
    assert len(degraded) == len(during) and all(flag and "online store" in str(why) for flag, why in degraded.values())

    proxy_restored.start()  # Redis is back
    recovered = wait_until_not_degraded(client, ticket_customer)
    assert not recovered["degraded"], recovered["reason"]
    assert client.get("/ready").json()["details"]["online_store"] is True
    # A new event for the customer arrives before the queued ones were replayed: they go first, in order, so
    # the close finds the ticket it closes (applied after the open, it would have been a no-op).
    assert event(client, ticket_customer, 2, type="ticket_closed", ticket_id=880_101) == "applied"
    assert runtime.spool.pending("events") == 0
    features = runtime.backends.features
    assert features.read_one(ticket_customer).values["open_tickets"] == 0
    assert features.read_one(cart_customer).values["last_cart_value"] == pytest.approx(42.0)
    assert features.read_one(cart_customer).values["cart_open"] == 1


def test_hung_redis_keeps_decisions_fast_and_queued_events_replay(
    client: TestClient, runtime: DecisionRuntime, proxy_restored: TcpProxy
) -> None:
    customer = customer_with_email_consent(runtime)
    assert not decide(client, customer_id=customer)["degraded"]

    proxy_restored.freeze()  # Redis accepts and never answers: every call waits for the socket timeout
    during = [decide(client, customer_id=customer) for _ in range(12)]
    assert all(d["degraded"] and d["reason"].startswith("online store unavailable") for d in during)
    seconds = [d["_seconds"] for d in during]
    assert max(seconds) < 0.6 and statistics.median(seconds) < 0.1, [round(s, 3) for s in seconds]
    assert event(client, customer, type="ticket_opened", ticket_id=880_201, severity=1) == "queued"

    proxy_restored.thaw()
    assert not wait_until_not_degraded(client, customer)["degraded"]
    assert runtime.replay_spool()["events"] == 1  # what the service's watcher does every reload interval
    d = decide(client, customer_id=customer, candidates=["email_promo"])
    assert not d["degraded"] and paused_by_ticket(d)


def test_a_restart_loses_no_logged_decision(runtime: DecisionRuntime, service_settings: Settings) -> None:
    """A new process (here: a new runtime on the same settings) finds every decision the old one served."""
    served = list(SERVED)
    assert len(served) >= 20
    replay_request = next(d for d in SERVED.values() if d["request_id"])
    runtime.backends.log.close()

    restarted = build_runtime(service_settings)
    try:
        assert all(restarted.backends.log.get(i) is not None for i in served)
        assert len(logged(service_settings, served)) == len(served)
        app = create_app()
        app.state.runtime = restarted
        with TestClient(app) as c:
            body = {k: replay_request[k] for k in ("customer_id", "channel", "request_id")}
            again = c.post("/decide", json={**body, "candidates": ["email_promo"]}).json()
            assert again["replayed"] and again["decision_id"] == replay_request["decision_id"]
            fb = {"decision_id": served[0], "type": "click"}
            assert c.post("/feedback", json=fb).json()["recorded"] is True
            assert not decide(c, customer_id=replay_request["customer_id"])["degraded"]
    finally:
        restarted.backends.log.close()
