"""The decision API over HTTP (FastAPI app of the service, in process), on the session world with a trained
champion, the Feast SQLite online store and a SQLite decision log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from nextbest.serving.app import create_app
from nextbest.serving.models import LoadedModel
from nextbest.serving.runtime import DecisionRuntime, build_runtime
from nextbest.serving.schemas import DecideBatchResponse, DecisionResponse
from nextbest.settings import Settings

PROJECT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def runtime(settings: Settings, champion: Any) -> DecisionRuntime:
    return build_runtime(settings)


def decide(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/decide", json={"channel": "any", **body})
    assert response.status_code == 200, response.text
    assert_published(DecisionResponse, response.content)
    return response.json()  # type: ignore[no-any-return]


def assert_published(model: type[BaseModel], content: bytes) -> None:
    """The runtime builds response bodies without the response model: each must be, byte for byte, what the
    validated model serialises (every field, in order, with the contract's types and formats)."""
    assert model.model_validate_json(content).model_dump_json().encode() == content


def test_decision_contract(client: TestClient, runtime: DecisionRuntime, champion: Any) -> None:
    reader = runtime.backends.features
    assert reader is not None and reader._direct is not None  # the service reads features the direct way
    d = decide(client, customer_id=12)
    assert DecisionResponse.model_validate(d).decision_id == d["decision_id"]  # the body is the published model
    assert not d["degraded"] and d["reason"] is None
    assert d["model_version"] == str(champion.version)
    assert d["feature_service"] == "nba_v1" and len(d["ruleset_version"]) == 12
    assert 0 < d["probability"] <= 1
    ranks = [c["rank"] for c in d["candidates"]]
    assert ranks == sorted(ranks) and {c["action"] for c in d["candidates"]} == set(
        runtime.components.policy.catalog.ids
    )
    for c in d["candidates"]:
        assert {"propensity", "uplift", "value", "cost", "net_value", "lever", "eligible"} <= set(c)
    eligible = [c for c in d["candidates"] if c["eligible"]]
    assert eligible[0]["action"] == d["greedy_action"] or d["greedy_action"] == "no_action"
    for s in d["suppressed"]:
        assert s["rule_ids"] and len(s["messages"]) == len(s["rule_ids"])


def test_same_request_id_returns_the_same_decision_and_is_logged_once(
    client: TestClient, runtime: DecisionRuntime
) -> None:
    first = decide(client, customer_id=21, request_id="req-21-a")
    before = runtime.backends.log.counts()["decisions"]
    again = decide(client, customer_id=21, request_id="req-21-a")
    assert again["decision_id"] == first["decision_id"] and again["replayed"] and not first["replayed"]
    assert runtime.backends.log.counts()["decisions"] == before
    other = client.post("/decide", json={"customer_id": 22, "channel": "any", "request_id": "req-21-a"})
    assert other.status_code == 409 and other.json()["field"] == "request_id"


def test_unknown_customer_gets_a_degraded_fallback(client: TestClient) -> None:
    d = decide(client, customer_id=99_999_999)
    assert d["degraded"] and d["action"] == "no_action" and d["probability"] == 1.0
    assert "unknown customer" in d["reason"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "", "channel": "any"}, "customer_id"),
        ({"customer_id": -4, "channel": "any"}, "customer_id"),
        ({"channel": "any"}, "customer_id"),
        ({"customer_id": 5, "channel": "fax"}, "channel"),
        ({"customer_id": 5, "channel": "any", "candidates": ["email_promo", "telepathy"]}, "candidates"),
        ({"customer_id": 5, "channel": "any", "colour": "red"}, "colour"),
        ({"customer_id": 5, "channel": "any", "context": {"k": [1, 2]}}, "context.k"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client: TestClient, body: dict[str, Any], field: str) -> None:
    r = client.post("/decide", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["field"].startswith(field) and field in err["error"]
    assert "Traceback" not in r.text


@pytest.mark.parametrize("raw", [b"", b"[1]", b"null", b'{"customer_id": 5, "channel": "any"', b"\xff\xfe{}"])
def test_a_body_that_is_not_a_json_object_is_a_422_naming_the_body(client: TestClient, raw: bytes) -> None:
    r = client.post("/decide", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "body" and r.json()["error"].startswith("body: ")


def test_malformed_json_and_batches(client: TestClient, runtime: DecisionRuntime) -> None:
    r = client.post("/decide", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]
    assert client.post("/decide/batch", json={"requests": []}).status_code == 422
    limit = runtime.settings.serving.max_batch_size
    big = {"requests": [{"customer_id": 1, "channel": "any"}] * (limit + 1)}
    r = client.post("/decide/batch", json=big)
    assert r.status_code == 413 and r.json()["field"] == "requests"
    ok = client.post("/decide/batch", json={"requests": [{"customer_id": i, "channel": "email"} for i in (3, 4, 5)]})
    assert ok.status_code == 200 and [d["customer_id"] for d in ok.json()["decisions"]] == ["3", "4", "5"]
    assert_published(DecideBatchResponse, ok.content)


def _event(customer: int, minutes: int, **kw: Any) -> dict[str, Any]:
    ts = datetime.now(UTC) + timedelta(seconds=minutes)
    return {"customer_id": customer, "timestamp": ts.isoformat(), **kw}


def _email_promo(d: dict[str, Any]) -> dict[str, Any]:
    return (
        next(s for s in d["suppressed"] if s["action"] == "email_promo")
        if any(s["action"] == "email_promo" for s in d["suppressed"])
        else {}
    )


def test_ticket_suppresses_promotions_until_closed(client: TestClient, runtime: DecisionRuntime) -> None:
    customer = _customer_with_email_consent(runtime)
    body = {"customer_id": customer, "channel": "email", "candidates": ["email_promo"]}
    before = decide(client, **body)
    assert "no_promo_open_ticket" not in _email_promo(before).get("rule_ids", [])
    opened = client.post("/events", json=_event(customer, 1, type="ticket_opened", ticket_id=777_001, severity=2))
    assert opened.status_code == 200 and opened.json()["outcome"] == "applied"
    during = decide(client, **body)
    blocked = _email_promo(during)
    assert "no_promo_open_ticket" in blocked["rule_ids"]
    assert any("Open service ticket" in m for m in blocked["messages"])
    assert during["action"] == "no_action"
    closed = client.post("/events", json=_event(customer, 2, type="ticket_closed", ticket_id=777_001))
    assert closed.json()["outcome"] == "applied"
    after = decide(client, **body)
    assert "no_promo_open_ticket" not in _email_promo(after).get("rule_ids", [])


def _customer_with_email_consent(runtime: DecisionRuntime) -> int:
    reader = runtime.backends.features
    for customer in range(30, 400):
        row = reader.read_one(customer)
        if row.complete and row.values["email_opt_in"] == 1 and row.values["open_tickets"] == 0:
            return customer
    raise AssertionError("no customer with email consent and no open ticket in the test world")


def test_feedback_joins_its_decision_and_unknown_decisions_are_rejected(
    client: TestClient, runtime: DecisionRuntime
) -> None:
    d = decide(client, customer_id=33)
    fb = {"decision_id": d["decision_id"], "type": "conversion", "revenue": 42.5, "feedback_id": "fb-33"}
    r = client.post("/feedback", json=fb)
    assert r.status_code == 200 and r.json()["recorded"]
    assert client.post("/feedback", json=fb).json()["recorded"] is False  # the same feedback twice: once
    rows = [row for row in runtime.backends.log.training_rows() if row["decision_id"] == d["decision_id"]]
    assert rows and rows[0]["converted"] == 1 and rows[0]["revenue"] == pytest.approx(42.5)
    missing = client.post("/feedback", json={"decision_id": "nope", "type": "click"})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]
    wrong = client.post("/feedback", json={"decision_id": d["decision_id"], "type": "click", "customer_id": 34})
    assert wrong.status_code == 422 and wrong.json()["field"] == "customer_id"
    bad = client.post("/feedback", json={"decision_id": d["decision_id"], "type": "purchase"})
    assert bad.status_code == 422 and bad.json()["field"] == "type"


def test_malformed_event_names_the_field(client: TestClient) -> None:
    r = client.post("/events", json=_event(5, 0, type="ticket_opened", ticket_id=1))
    assert r.status_code == 422 and "severity" in r.json()["error"]
    r = client.post("/events", json=_event(5, 0, type="volcano"))
    assert r.status_code == 422


def test_api_key_protects_writes(runtime: DecisionRuntime) -> None:
    from pydantic import SecretStr

    serving = runtime.settings.serving.model_copy(update={"api_key": SecretStr("s3cret")})
    secured = runtime.settings.model_copy(update={"serving": serving})
    app = create_app()
    app.state.runtime = _with_settings(runtime, secured)
    with TestClient(app) as c:
        event = _event(41, 0, type="cart_abandoned", cart_value=10.0)
        assert c.post("/events", json=event).status_code == 401
        assert c.post("/events", json=event, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/events", json=event, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/admin/reload").status_code == 401
        # Decisions too, once a key is set (issue 14): an open /decide revealed consent, tickets and tier.
        assert c.post("/decide", json={"customer_id": 41, "channel": "any"}).status_code == 401
        ok = c.post("/decide", json={"customer_id": 41, "channel": "any"}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200


def _with_settings(runtime: DecisionRuntime, settings: Settings) -> DecisionRuntime:
    return DecisionRuntime(settings, runtime.components, runtime.backends, runtime.metrics)


class _BrokenStore:
    def read_one(self, customer_id: int, now: float | None = None) -> Any:
        raise ConnectionError("store is down")


class _LateReader:
    """Reads as if the call came ten days later: every weekly view is stale."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    def read_one(self, customer_id: int, now: float | None = None) -> Any:
        return self.reader.read_one(customer_id, (now or datetime.now(UTC).timestamp()) + 10 * 86_400)


def test_degraded_fallbacks_never_500(runtime: DecisionRuntime) -> None:
    from dataclasses import replace

    cases = {
        "online store unavailable": replace(runtime.backends, features=_BrokenStore()),
        "stale or missing features": replace(runtime.backends, features=_LateReader(runtime.backends.features)),
    }
    for reason, backends in cases.items():
        app = create_app()
        app.state.runtime = DecisionRuntime(runtime.settings, runtime.components, backends, runtime.metrics)
        with TestClient(app) as c:
            d = decide(c, customer_id=50)
            assert d["degraded"] and reason in d["reason"] and d["action"] == "no_action"
            ready = c.get("/ready").json()["details"]["online_store"]
            assert ready is (reason != "online store unavailable")  # readiness reads the store too
    saved = runtime.components.model
    runtime.components.model = LoadedModel(None, None, "models:/x@champion", "model failed to load: boom")
    try:
        app = create_app()
        app.state.runtime = runtime
        with TestClient(app) as c:
            d = decide(c, customer_id=51)
            assert d["degraded"] and "failed to load" in d["reason"]
            ready = c.get("/ready").json()
            assert any("failed to load" in x for x in ready["degraded"])
    finally:
        runtime.components.model = saved


def test_openapi_document_is_published_and_committed(client: TestClient) -> None:
    published = client.get("/openapi.json").json()
    assert {"/decide", "/decide/batch", "/events", "/feedback", "/ready"} <= set(published["paths"])
    committed = json.loads((PROJECT / "docs" / "openapi.json").read_text())
    assert committed == published, "regenerate with `nextbest openapi > docs/openapi.json` and review the diff"
