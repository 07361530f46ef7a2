"""Input that must not poison, pin or overload the service (over HTTP, the app of the service in process, on
the session world with its champion and decision logs of their own: SQLite, and PostgreSQL where the case
touches the log)."""

from __future__ import annotations

import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nextbest.io.decision_log import FeedbackRecord
from nextbest.serving.app import create_app
from nextbest.serving.runtime import DecisionRuntime, build_runtime
from nextbest.settings import Settings


@pytest.fixture(scope="module")
def runtime(settings: Settings, champion: Any, tmp_path_factory: pytest.TempPathFactory) -> DecisionRuntime:
    log = tmp_path_factory.mktemp("hardening") / "decisions.db"
    return build_runtime(settings.model_copy(update={"decision_log_url": f"sqlite:///{log}"}))


def _post(client: TestClient, path: str, raw: str) -> Any:
    return client.post(path, content=raw.encode(), headers={"content-type": "application/json"})


def _decision(client: TestClient, customer_id: int = 12, **body: Any) -> dict[str, Any]:
    r = client.post("/decide", json={"customer_id": customer_id, "channel": "any", **body})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# Every number finite and bounded ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/decide", '{"customer_id": 12, "channel": "any", "context": {"basket": NaN}}', "context.basket"),
        ("/decide", '{"customer_id": 12, "channel": "any", "context": {"basket": Infinity}}', "context.basket"),
        ("/decide", '{"customer_id": 12, "channel": "any", "context": {"basket": -1e999}}', "context.basket"),
        ("/decide", '{"customer_id": 12, "channel": "any", "context": {"basket": 1e20}}', "context.basket"),
        ("/feedback", '{"decision_id": "d", "type": "conversion", "revenue": Infinity}', "revenue"),
        ("/feedback", '{"decision_id": "d", "type": "conversion", "revenue": NaN}', "revenue"),
        ("/feedback", '{"decision_id": "d", "type": "conversion", "revenue": 1e12}', "revenue"),
        (
            "/events",
            '{"type": "cart_abandoned", "customer_id": 12, "timestamp": "2026-01-01T00:00:00Z", "cart_value": 1e999}',
            "cart_value",
        ),
    ],
)
def test_non_finite_and_unbounded_numbers_are_a_422_naming_the_field(
    client: TestClient, path: str, raw: str, field: str
) -> None:
    r = _post(client, path, raw)
    assert r.status_code == 422, r.text
    assert r.json()["field"].endswith(field) and r.json()["error"].startswith(r.json()["field"])


def test_a_conversion_with_infinite_revenue_is_refused_and_analytics_stay_up(
    client: TestClient, runtime: DecisionRuntime
) -> None:
    d = _decision(client, customer_id=14)
    r = _post(
        client, "/feedback", f'{{"decision_id": "{d["decision_id"]}", "type": "conversion", "revenue": Infinity}}'
    )
    assert r.status_code == 422 and r.json()["field"] == "revenue"
    assert client.get("/analytics/data").json()["totals"]["skipped_rows"] == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_non_finite_revenue_already_in_the_log_is_skipped_and_counted(
    backend: str, runtime: DecisionRuntime, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Rows written before revenue was validated (or by another writer): analytics, the report and rule
    simulation skip and count them instead of failing on them."""
    from nextbest.io.decision_log import open_decision_log
    from nextbest.serving.simulation_data import rows_from_log

    url = f"sqlite:///{tmp_path / 'log.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_log_url")
    settings = runtime.settings.model_copy(update={"decision_log_url": url})
    poisoned = build_runtime(settings)
    app = create_app()
    app.state.runtime = poisoned
    with TestClient(app) as c:
        good, bad = _decision(c, customer_id=15), _decision(c, customer_id=16)
        poisoned.backends.log.record_feedback(
            FeedbackRecord("fb-inf", bad["decision_id"], "16", time.time(), "conversion", math.inf, {})
        )
        assert c.post("/feedback", json={"decision_id": good["decision_id"], "type": "conversion", "revenue": 20.0})
        r = c.get("/analytics/data")
        assert r.status_code == 200, r.text
        totals = r.json()["totals"]
        assert totals["skipped_rows"] == 1 and totals["decisions"] == 1
        assert totals["served"]["revenue"] + totals["control_group"]["revenue"] == 20.0
    with open_decision_log(url) as log:
        loaded = rows_from_log(log, runtime.components.policy.catalog, since=time.time() - 3600)
    skipped = loaded.skipped.get("non-finite or negative revenue or probability", 0)
    assert skipped == 1 and all(math.isfinite(row.reward) for row in loaded.rows)
    poisoned.backends.log.close()


def test_rules_and_catalogs_with_infinite_values_are_rejected(tmp_path: Path) -> None:
    from nextbest.core.catalog import load_catalog
    from nextbest.core.rules import load_ruleset
    from nextbest.errors import ConfigError

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: x\nrules:\n  - {id: boost, description: d, owner: o, when: 'true', effect: {lever: .inf}, "
        "message: m}\n"
    )
    with pytest.raises(ConfigError, match="lever"):
        load_ruleset(rules)
    catalog = tmp_path / "actions.yaml"
    project = Path(__file__).resolve().parents[3]
    catalog.write_text((project / "catalog" / "actions.yaml").read_text().replace("value: 60", "value: .nan", 1))
    assert ".nan" in catalog.read_text()
    with pytest.raises(ConfigError, match="value"):
        load_catalog(catalog)


# Event and feedback time --------------------------------------------------------------------------------------
def test_an_event_dated_in_the_future_is_refused_and_cannot_outlive_a_later_opt_out(
    client: TestClient, runtime: DecisionRuntime
) -> None:
    customer = f"consent-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    future = {"type": "consent_changed", "customer_id": customer, "channel": "email", "opt_in": True,
              "timestamp": "2200-01-01T00:00:00Z"}  # fmt: skip
    r = client.post("/events", json=future)
    assert r.status_code == 422 and r.json()["field"] == "timestamp" and "in the future" in r.json()["error"]
    skew = runtime.settings.serving.max_clock_skew_s
    within = {**future, "timestamp": (now + timedelta(seconds=skew / 2)).isoformat()}
    assert client.post("/events", json=within).json()["outcome"] == "applied"  # clocks differ a little
    opt_out = {**future, "opt_in": False, "timestamp": (now + timedelta(seconds=skew / 2 + 1)).isoformat()}
    assert client.post("/events", json=opt_out).json()["outcome"] == "applied"
    assert runtime.backends.features.read_one(customer).values.get("email_opt_in") == 0


def test_feedback_dated_in_the_future_is_refused(client: TestClient) -> None:
    d = _decision(client, customer_id=17)
    late = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = client.post("/feedback", json={"decision_id": d["decision_id"], "type": "click", "timestamp": late})
    assert r.status_code == 422 and r.json()["field"] == "timestamp"
    batch = client.post("/feedback/batch", json={"items": [
        {"decision_id": d["decision_id"], "type": "click", "timestamp": late},
        {"decision_id": d["decision_id"], "type": "impression"},
    ]}).json()["results"]  # fmt: skip
    assert [x["recorded"] for x in batch] == [False, True] and "timestamp" in batch[0]["error"]


# Idempotency that cannot be hijacked --------------------------------------------------------------------------
def test_a_request_id_replays_only_the_same_request(client: TestClient) -> None:
    rid = f"r-{uuid.uuid4().hex}"
    pinned = _decision(client, customer_id=18, candidates=["no_action"], request_id=rid)
    assert pinned["action"] == "no_action"
    again = _decision(client, customer_id=18, candidates=["no_action"], request_id=rid)
    assert again["replayed"] and again["decision_id"] == pinned["decision_id"]
    for other in ({"candidates": None}, {"context": {"page": "cart"}}, {"channel": "email"}, {"customer_id": 19}):
        body = {"customer_id": 18, "channel": "any", "candidates": ["no_action"], "request_id": rid, **other}
        r = client.post("/decide", json=body)
        assert r.status_code == 409 and r.json()["field"] == "request_id", (other, r.text)
        assert str(18) not in r.json()["error"]  # says nothing about the other request


def test_two_requests_racing_on_one_request_id_get_one_decision_or_a_409(
    client: TestClient, runtime: DecisionRuntime
) -> None:
    """Both look the id up before either has stored it (two replicas at once): the log's UNIQUE request_id
    keeps one; the loser gets that decision when it asked the same, a 409 otherwise."""
    original = runtime.backends.log.find_by_request
    runtime.backends.log.find_by_request = lambda request_id: None  # type: ignore[method-assign]
    try:
        rid = f"race-{uuid.uuid4().hex}"
        first = _decision(client, customer_id=20, request_id=rid)
        same = _decision(client, customer_id=20, request_id=rid)
        assert same["replayed"] and same["decision_id"] == first["decision_id"]
        r = client.post("/decide", json={"customer_id": 20, "channel": "any", "request_id": rid, "context": {"a": 1}})
        assert r.status_code == 409 and r.json()["field"] == "request_id"
    finally:
        runtime.backends.log.find_by_request = original  # type: ignore[method-assign]
    assert runtime.backends.log.find_by_request(rid).decision_id == first["decision_id"]  # type: ignore[union-attr]


# Limits ------------------------------------------------------------------------------------------------------
def test_a_large_body_is_a_413_before_it_is_parsed(client: TestClient, runtime: DecisionRuntime) -> None:
    limit = runtime.settings.serving.max_body_bytes
    huge = '{"customer_id": 12, "channel": "any", "context": {"x": "' + "a" * (limit + 10) + '"}}'
    before = runtime.backends.log.counts()
    r = _post(client, "/decide", huge)
    assert r.status_code == 413 and r.json()["field"] == "body" and f"{limit:,} bytes" in r.json()["error"]

    def chunks() -> Any:  # no Content-Length: counted as it streams
        for _ in range(limit // 1000 + 2):
            yield b" " * 1000

    r = client.post("/decide", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body"
    assert runtime.backends.log.counts() == before  # nothing stored
    batch_limit = runtime.settings.serving.max_batch_body_bytes
    r = _post(client, "/decide/batch", '{"requests": [' + " " * batch_limit + "]}")
    assert r.status_code == 413 and f"{batch_limit:,} bytes" in r.json()["error"]


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"k": "v" * 1025}, "context.k"),
        ({"k" * 65: 1}, "context"),
        ({f"k{i}": i for i in range(51)}, "context"),
        ({"k": "a\u0000b"}, "context.k"),
        ({"k": [1, 2]}, "context.k"),
    ],
)
def test_context_is_bounded(client: TestClient, context: dict[str, Any], field: str) -> None:
    r = client.post("/decide", json={"customer_id": 12, "channel": "any", "context": context})
    assert r.status_code == 422 and r.json()["field"].startswith(field), r.text


def test_identifiers_with_control_characters_are_refused(client: TestClient) -> None:
    """A NUL in a request_id is a 422, not a decision served and never logged (PostgreSQL refuses NUL)."""
    r = client.post("/decide", json={"customer_id": 12, "channel": "any", "request_id": "a\u0000b"})
    assert r.status_code == 422 and r.json()["field"] == "request_id"
    r = client.post("/feedback", json={"decision_id": "a\u0000b", "type": "click"})
    assert r.status_code == 422 and r.json()["field"] == "decision_id"


def test_duplicate_candidates_count_once(client: TestClient) -> None:
    d = _decision(client, customer_id=21, candidates=["help_content", "help_content", "no_action"])
    assert sorted(c["action"] for c in d["candidates"]) == ["help_content", "no_action"]


# The error contract -------------------------------------------------------------------------------------------
def test_405_names_the_allowed_methods_and_errors_are_json(client: TestClient) -> None:
    r = client.get("/decide")
    assert r.status_code == 405 and r.headers["allow"] == "POST" and r.json()["error"]


def test_an_unexpected_error_is_a_json_500(runtime: DecisionRuntime) -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("boom")

    app = create_app()
    app.state.runtime = DecisionRuntime(runtime.settings, runtime.components, Exploding(), runtime.metrics)  # type: ignore[arg-type]
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/ready")
        assert r.status_code == 500 and r.headers["content-type"] == "application/json"
        assert r.json()["error"].startswith("internal error (RuntimeError)") and "boom" not in r.text


# Access ---------------------------------------------------------------------------------------------------------
def test_decisions_need_a_key_once_keys_are_set_and_readiness_hides_its_details(runtime: DecisionRuntime) -> None:
    from pydantic import SecretStr

    serving = runtime.settings.serving.model_copy(
        update={"api_key": SecretStr("admin-key"), "decide_api_key": SecretStr("decide-key")}
    )
    secured = runtime.settings.model_copy(update={"serving": serving})
    app = create_app()
    app.state.runtime = DecisionRuntime(secured, runtime.components, runtime.backends, runtime.metrics)
    body = {"customer_id": 22, "channel": "any"}
    with TestClient(app) as c:
        assert c.post("/decide", json=body).status_code == 401
        assert c.post("/decide", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/decide", json=body, headers={"X-API-Key": "decide-key"}).status_code == 200
        assert c.post("/decide", json=body, headers={"Authorization": "Bearer admin-key"}).status_code == 200
        assert c.post("/decide/batch", json={"requests": [body]}).status_code == 401
        batch = c.post("/decide/batch", json={"requests": [body]}, headers={"X-API-Key": "decide-key"})
        assert batch.status_code == 200
        # The decide key is for decisions only.
        assert c.post("/admin/reload", headers={"X-API-Key": "decide-key"}).status_code == 401
        anonymous = c.get("/ready").json()
        assert set(anonymous["details"]) == {"instance_id", "spooled", "decision_log", "online_store", "rule_count"}
        assert str(runtime.settings.home) not in json.dumps(anonymous)
        full = c.get("/ready", headers={"X-API-Key": "admin-key"}).json()
        assert "model_source" in full["details"] and "last_reload_error" in full["details"]


@pytest.mark.parametrize("path", ["/events", "/feedback", "/feedback/batch", "/decide/batch", "/explorer/lookup"])
def test_a_body_that_is_not_json_is_a_422_naming_the_body(client: TestClient, path: str) -> None:
    r = _post(client, path, '{"customer_id": 12,')
    assert r.status_code == 422 and r.json()["field"] == "body", r.text
    undecodable = client.post(path, content=b"\x10\xff\xfe{", headers={"content-type": "application/json"})
    assert undecodable.status_code == 422 and undecodable.json()["field"] == "body", undecodable.text  # not a 400


@pytest.mark.parametrize(
    ("rules_yaml", "needle"),
    [
        ("version: x\nrules:\n  - {id: a, description: d, owner: o, when: 'true', effect: suppress, message: m, "
         "valid_from: 2026-02-30}", "day is out of range"),
        ("[" * 3000 + "]" * 3000, "nested too deeply"),
        ("version: x\nrules:\n  - {id: a, description: d, owner: o, effect: suppress, message: m, "
         "when: '[1].all(x, [2].all(y, [3].exists(z, z > x)))'}", "comprehensions"),
    ],
)  # fmt: skip
def test_a_what_if_that_cannot_be_parsed_or_would_pin_a_worker_is_a_422(
    client: TestClient, rules_yaml: str, needle: str
) -> None:
    body = {"customer_id": 12, "channel": "email", "whatif": {"rules_yaml": rules_yaml}}
    r = client.post("/explorer/lookup", json=body)
    assert r.status_code == 422 and needle in r.json()["error"], r.text


# Nothing counted twice -------------------------------------------------------------------------------------
def test_a_feedback_retry_without_an_id_is_recorded_once(client: TestClient, runtime: DecisionRuntime) -> None:
    d = _decision(client, customer_id=23)
    conversion = {"decision_id": d["decision_id"], "type": "conversion", "revenue": 42.0}
    first, retry = client.post("/feedback", json=conversion).json(), client.post("/feedback", json=conversion).json()
    assert first["recorded"] and not retry["recorded"] and first["feedback_id"] == retry["feedback_id"]
    batch = client.post("/feedback/batch", json={"items": [conversion, conversion]}).json()["results"]
    assert [x["recorded"] for x in batch] == [False, False]
    # Two purchases on one decision: told apart by their times (or ids of their own).
    now = datetime.now(UTC)
    for minutes in (1, 2):
        at = {**conversion, "timestamp": (now - timedelta(minutes=minutes)).isoformat()}
        assert client.post("/feedback", json=at).json()["recorded"]
    rows = [r for r in runtime.backends.log.training_rows() if r["decision_id"] == d["decision_id"]]
    assert len(rows) == 1 and rows[0]["revenue"] == 3 * 42.0 and rows[0]["feedback_count"] == 3
