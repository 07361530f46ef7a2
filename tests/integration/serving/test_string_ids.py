"""String customer ids over HTTP (the FastAPI app of the service, in process) on the session world: a customer
keyed by a CRM id in the online store is decided, gets feedback and events; integer and string forms of one id
are one customer; bad ids are 422s naming ``customer_id``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from nextbest.core.exploration import control_group_mask, in_control_group
from nextbest.core.features import ENTITY, VIEWS
from nextbest.serving.runtime import DecisionRuntime, build_runtime
from nextbest.serving.schemas import DecisionResponse, EventResponse
from nextbest.settings import Settings
from tests.integration.serving.test_api import assert_published

CRM_ID = "C0112906"
UUID_ID = "3f2a1c9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"


@pytest.fixture(scope="module")
def twin(world_dir: Path) -> str:
    """A session-world customer no other test touches, without an open ticket: the string-id customers copy
    its features."""
    tickets = pd.read_parquet(world_dir / "feature_tables" / "ticket_state.parquet")
    latest = tickets.sort_values("event_timestamp").groupby(ENTITY).tail(1).set_index(ENTITY)["open_tickets"]
    return next(c for c in (str(i) for i in range(2_700, 3_000)) if latest.get(c) == 0)


@pytest.fixture(scope="module")
def runtime(settings: Settings, champion: Any, world_dir: Path, twin: str) -> DecisionRuntime:
    rt = build_runtime(settings)
    store = rt.backends.features.store
    for spec in VIEWS:  # the twin's latest row of every view, written under the string ids
        table = pd.read_parquet(world_dir / "feature_tables" / f"{spec.table}.parquet")
        latest = table[table[ENTITY] == twin].sort_values("event_timestamp").tail(1)
        assert len(latest) == 1, spec.table
        for key in (CRM_ID, UUID_ID):
            store.write_to_online_store(spec.name, latest.assign(**{ENTITY: key}))
    return rt


def decide(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/decide", json={"channel": "email", **body})
    assert response.status_code == 200, response.text
    assert_published(DecisionResponse, response.content)
    return response.json()  # type: ignore[no-any-return]


def _propensities(d: dict[str, Any]) -> dict[str, float]:
    return {c["action"]: c["propensity"] for c in d["candidates"]}


def test_a_string_customer_is_decided_from_its_online_features(client: TestClient, twin: str) -> None:
    crm, same, other = (
        decide(client, customer_id=CRM_ID),
        decide(client, customer_id=int(twin)),
        decide(client, customer_id=UUID_ID),
    )
    assert crm["customer_id"] == CRM_ID and other["customer_id"] == UUID_ID and same["customer_id"] == twin
    assert not crm["degraded"] and not other["degraded"], crm["reason"]
    assert _propensities(crm) == _propensities(same) == _propensities(other)  # the same features: the same scores
    unknown = decide(client, customer_id="C9999999")
    assert unknown["degraded"] and unknown["reason"] == "unknown customer C9999999: no features"


def test_feedback_and_events_for_a_string_customer(client: TestClient, runtime: DecisionRuntime, twin: str) -> None:
    d = decide(client, customer_id=CRM_ID, request_id="crm-1")
    assert "no_promo_open_ticket" not in {r for x in d["suppressed"] for r in x["rule_ids"]}
    fb = client.post("/feedback", json={"decision_id": d["decision_id"], "type": "impression", "customer_id": CRM_ID})
    assert fb.status_code == 200 and fb.json()["recorded"], fb.text
    wrong = client.post("/feedback", json={"decision_id": d["decision_id"], "type": "click", "customer_id": "c0112906"})
    assert wrong.status_code == 422 and wrong.json()["field"] == "customer_id"  # ids are case-sensitive text
    batch = client.post("/feedback/batch", json={"items": [
        {"decision_id": d["decision_id"], "type": "click", "customer_id": CRM_ID},
        {"decision_id": d["decision_id"], "type": "click", "customer_id": UUID_ID},
    ]})  # fmt: skip
    results = batch.json()["results"]
    assert (
        results[0]["recorded"] and not results[1]["recorded"] and "belongs to customer C0112906" in results[1]["error"]
    )
    logged = next(r for r in runtime.backends.log.training_rows() if r["decision_id"] == d["decision_id"])
    assert (logged["customer_id"], logged["impressed"], logged["clicked"]) == (CRM_ID, 1, 1)
    assert client.post("/decide", json={"customer_id": CRM_ID, "channel": "email", "request_id": "crm-1"}).json()[
        "replayed"
    ]

    ts = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    event = {"type": "ticket_opened", "customer_id": CRM_ID, "ticket_id": 770_001, "severity": 1, "timestamp": ts}
    r = client.post("/events", json=event)
    assert r.status_code == 200, r.text
    assert EventResponse.model_validate(r.json()) == EventResponse(
        customer_id=CRM_ID, type="ticket_opened", view="service_tickets", outcome="applied"
    )
    after = decide(client, customer_id=CRM_ID)
    blocked = {s["action"]: s["rule_ids"] for s in after["suppressed"]}
    assert "no_promo_open_ticket" in blocked["email_promo"]  # the event reached the string-keyed row
    copied = decide(client, customer_id=twin)
    assert "no_promo_open_ticket" not in {r for s in copied["suppressed"] for r in s["rule_ids"]}  # not the twin's


def test_integer_and_string_forms_are_one_customer(client: TestClient, runtime: DecisionRuntime) -> None:
    first = decide(client, customer_id=2_778, request_id="int-and-string")
    again = client.post("/decide", json={"customer_id": "2778", "channel": "email", "request_id": "int-and-string"})
    assert again.status_code == 200 and again.json()["replayed"] and again.json()["decision_id"] == first["decision_id"]
    other = client.post("/decide", json={"customer_id": "02778", "channel": "email", "request_id": "int-and-string"})
    assert other.status_code == 409 and other.json()["field"] == "request_id"  # "02778" is another customer
    fb = client.post("/feedback", json={"decision_id": first["decision_id"], "type": "impression", "customer_id": 2778})
    assert fb.status_code == 200 and fb.json()["recorded"]
    assert runtime.backends.log.contacts(2778, 0) == runtime.backends.log.contacts("2778", 0)
    assert runtime.backends.log.get(first["decision_id"]).customer_id == "2778"  # type: ignore[union-attr]
    batch = client.post("/decide/batch", json={"requests": [
        {"customer_id": 12, "channel": "any"}, {"customer_id": CRM_ID, "channel": "any"},
        {"customer_id": "12", "channel": "any"},
    ]})  # fmt: skip
    assert [d["customer_id"] for d in batch.json()["decisions"]] == ["12", CRM_ID, "12"]
    # The control group hashes the id's text: the integer and its string are in or out together.
    assert [in_control_group(i, 0.3, "s") for i in range(1, 400)] == [
        in_control_group(str(i), 0.3, "s") for i in range(1, 400)
    ]
    assert control_group_mask(list(range(1, 400)), 0.3, "s").tolist() == [
        in_control_group(str(i), 0.3, "s") for i in range(1, 400)
    ]


BAD_IDS = ["", "a\x00b", "C1\n", " C1", "C1 ", "x" * 129, 42.5, 42.0, True, None, [1], {"id": 1}, 0, -4, 2**63]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_customer_ids_are_422s_naming_the_field(client: TestClient, bad: Any) -> None:
    ts = datetime.now(UTC).isoformat()
    cases = [
        ("/decide", {"customer_id": bad, "channel": "any"}, "customer_id"),
        ("/decide/batch", {"requests": [{"customer_id": 5, "channel": "any"}, {"customer_id": bad, "channel": "any"}]},
         "requests.1.customer_id"),
        ("/events", {"type": "cart_abandoned", "customer_id": bad, "cart_value": 9.0, "timestamp": ts}, "customer_id"),
        ("/feedback", {"decision_id": "d", "type": "click", "customer_id": bad}, "customer_id"),
        ("/feedback/batch", {"items": [{"decision_id": "d", "type": "click", "customer_id": bad}]},
         "items.0.customer_id"),
        ("/explorer/lookup", {"customer_id": bad, "channel": "any"}, "customer_id"),
    ]  # fmt: skip
    for path, body, field in cases:
        if bad is None and path.startswith("/feedback"):
            continue  # feedback's customer_id is optional: null means "not given"
        r = client.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        err = r.json()
        assert err["field"].endswith(field) and "customer_id" in err["error"], (path, err)
        assert "\x00" not in r.text and "Traceback" not in r.text


@pytest.mark.parametrize("good", ["x" * 128, "ünïcødé-id", "a b", "9223372036854775807", 2**63 - 1])
def test_ids_at_the_limits_are_accepted(client: TestClient, good: Any) -> None:
    d = decide(client, customer_id=good)
    assert d["customer_id"] == str(good) and d["reason"] == f"unknown customer {good}: no features"


def test_openapi_documents_customer_id_as_string_or_integer(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for model in ("DecideRequest", "FeedbackRequest", "TicketOpened"):
        prop = schemas[model]["properties"]["customer_id"]
        kinds = [
            k
            for alt in prop.get("anyOf", [prop])
            for k in ([alt.get("type")] + [a.get("type") for a in alt.get("anyOf", [])])
        ]
        assert {"string", "integer"} <= set(kinds), (model, prop)
    assert schemas["DecisionResponse"]["properties"]["customer_id"]["type"] == "string"
    assert schemas["EventResponse"]["properties"]["customer_id"]["type"] == "string"
