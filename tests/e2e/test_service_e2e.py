"""End to end with a real `bentoml serve` subprocess (the demo's walk-through): the ticket guardrail over
HTTP, bad requests get 4xx, a decision survives a restart in the log, feedback joins its decision."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from nextbest.cli.walkthrough import run_walkthrough, start_service, stop_service, wait_ready
from nextbest.settings import Settings
from tests.support.servers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(settings: Settings, champion: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    port = free_port()
    env = {"NEXTBEST_DATA_DIR": str(settings.data_dir), "NEXTBEST_PROJECT_DIR": str(settings.project_dir)}
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    process = start_service(settings.home, port, log, env)
    base = f"http://127.0.0.1:{port}"
    try:
        seconds = wait_ready(base, process)
    except Exception:
        stop_service(process)
        raise AssertionError(f"service did not start:\n{log.read_text()[-3000:]}") from None
    state = {"base": base, "process": process, "port": port, "env": env, "log": log, "startup_s": seconds}
    yield state
    stop_service(state["process"])


def test_ticket_walkthrough(service: dict[str, Any]) -> None:
    walk = run_walkthrough(service["base"], range(1, 300))
    steps = dict(walk.steps)
    first, during, after = steps["decision"], steps["decision during the ticket"], steps["decision after the ticket"]
    assert steps["ticket opened"]["outcome"] == "applied" and steps["ticket closed"]["outcome"] == "applied"
    blocked = {s["action"]: s for s in during["suppressed"]}
    promos = [
        c["action"]
        for c in first["candidates"]
        if c["eligible"] and c["action"].startswith(("email_promo", "discount"))
    ]
    assert promos, "the customer had an eligible promotion before the ticket"
    for action in promos:
        assert "no_promo_open_ticket" in blocked[action]["rule_ids"]
        assert any("Open service ticket" in m for m in blocked[action]["messages"])
    assert during["action"] not in promos
    still_blocked = {s["action"] for s in after["suppressed"] if "no_promo_open_ticket" in s["rule_ids"]}
    assert not still_blocked
    eligible_after = {c["action"] for c in after["candidates"] if c["eligible"]}
    assert set(promos) <= eligible_after  # the promotions are eligible again
    assert steps["feedback"]["recorded"] is True


def test_bad_requests_are_4xx_with_the_field(service: dict[str, Any]) -> None:
    base = service["base"]
    r = httpx.post(f"{base}/decide", json={"customer_id": "", "channel": "email"})  # ids are strings: "" is not one
    assert r.status_code == 422 and r.json()["field"] == "customer_id"
    r = httpx.post(f"{base}/decide", content=b"{", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500
    r = httpx.post(f"{base}/feedback", json={"decision_id": "unknown-id", "type": "click"})
    assert r.status_code == 404 and "unknown-id" in r.json()["error"]
    assert httpx.get(f"{base}/metrics").status_code == 200


def test_decision_survives_a_restart_and_feedback_joins(service: dict[str, Any], settings: Settings) -> None:
    base = service["base"]
    body = {"customer_id": 17, "channel": "any", "request_id": "restart-17"}
    first = httpx.post(f"{base}/decide", json=body).json()
    stop_service(service["process"])
    service["process"] = start_service(settings.home, service["port"], service["log"], service["env"])
    wait_ready(base, service["process"])
    again = httpx.post(f"{base}/decide", json=body).json()
    assert again["decision_id"] == first["decision_id"] and again["replayed"]
    fb = httpx.post(
        f"{base}/feedback", json={"decision_id": first["decision_id"], "type": "conversion", "revenue": 30.0}
    ).json()
    assert fb["recorded"]
    from nextbest.io.decision_log import open_decision_log

    assert settings.decision_log_url is not None
    log = open_decision_log(settings.decision_log_url)
    rows = [r for r in log.training_rows() if r["decision_id"] == first["decision_id"]]
    log.close()
    assert rows and rows[0]["converted"] == 1 and rows[0]["revenue"] == pytest.approx(30.0)
    fresh = httpx.post(f"{base}/decide", json={"customer_id": 18, "channel": "any"}).json()
    metrics = httpx.get(f"{base}/metrics").text
    assert f'nextbest_decisions_total{{action="{fresh["action"]}"' in metrics
    assert "nextbest_decision_latency_seconds_bucket" in metrics
    suppressed = Counter(rule for s in fresh["suppressed"] for rule in s["rule_ids"])
    assert suppressed, fresh  # customer 18 has suppressed actions (no SMS consent, at least)
    for rule, n in suppressed.items():  # counted per suppressed action, since this process started or before
        found = re.search(rf'^nextbest_suppressions_total{{rule="{rule}"}} (\S+)$', metrics, re.M)
        assert found and float(found.group(1)) >= n, (rule, n)
