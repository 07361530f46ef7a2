"""Hot reload of rules under live traffic: no request lost, never a half-loaded ruleset, invalid files rejected
whole (visible in /ready, metrics and logs), shadow rules reported and logged but never applied.

Uses temp copies of the rule, parameter and catalog files; the shipped files are never touched."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from nextbest.core.rules import load_ruleset
from nextbest.serving.app import create_app
from nextbest.serving.runtime import DecisionRuntime, build_runtime
from nextbest.settings import Settings, load_settings

PROJECT = Path(__file__).resolve().parents[3]
FREEZE = {"id": "freeze_email_promo", "description": "Pause the newsletter.", "owner": "crm@example.com",
          "when": "action.id == 'email_promo'", "effect": "suppress", "message": "Newsletter paused."}  # fmt: skip
SHADOW = {**FREEZE, "id": "shadow_email_freeze", "mode": "shadow", "message": "Would pause the newsletter."}
BROKEN = {**FREEZE, "id": "broken_rule", "when": "action.id == 'email_promo' &&& customer.open_tickets > 0"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("reload")
    doc = yaml.safe_load((PROJECT / "rules" / "guardrails.yaml").read_text())
    texts = {
        "A": yaml.safe_dump(doc, sort_keys=False),
        "B": yaml.safe_dump({**doc, "rules": [*doc["rules"], FREEZE]}, sort_keys=False),
        "C": yaml.safe_dump({**doc, "rules": [*doc["rules"], SHADOW]}, sort_keys=False),
        "bad": yaml.safe_dump({**doc, "rules": [*doc["rules"], FREEZE, BROKEN]}, sort_keys=False),
    }
    params = shutil.copy(PROJECT / "rules" / "params" / "default.yaml", tmp / "params.yaml")
    catalog = shutil.copy(PROJECT / "catalog" / "actions.yaml", tmp / "actions.yaml")
    versions = {}
    for name in ("A", "B", "C"):
        (tmp / f"{name}.yaml").write_text(texts[name])
        versions[name] = load_ruleset(tmp / f"{name}.yaml", Path(params)).version
    live = tmp / "guardrails.yaml"
    live.write_text(texts["A"])
    return {"dir": tmp, "live": live, "params": Path(params), "catalog": Path(catalog), "texts": texts, **versions}


def install(files: dict[str, Any], name: str) -> None:
    """Replace the live rule file atomically, as an editor or a deploy does (write aside, rename)."""
    aside = files["dir"] / f".{name}.tmp"
    aside.write_text(files["texts"][name])
    os.replace(aside, files["live"])


@pytest.fixture(scope="module")
def metrics() -> Iterator[Any]:
    from prometheus_client import REGISTRY

    from nextbest.serving.metrics import Metrics

    m = Metrics()
    yield m
    for collector in m.collectors():
        REGISTRY.unregister(collector)


@pytest.fixture(scope="module")
def runtime(settings: Settings, champion: Any, files: dict[str, Any], metrics: Any) -> DecisionRuntime:
    s = load_settings(
        home=settings.home, data_dir=settings.data_dir, rules_path=files["live"], rule_params_path=files["params"],
        catalog_path=files["catalog"], decision_log_url=f"sqlite:///{files['dir'] / 'decisions.db'}",
        serving={"exploration_rate": 0.0, "control_group_share": 0.0, "reload_interval_s": 0},
    )  # fmt: skip
    return build_runtime(s, metrics)


def email_promo_rules(d: dict[str, Any]) -> list[str]:
    return next((s["rule_ids"] for s in d["suppressed"] if s["action"] == "email_promo"), [])


def test_reload_under_concurrent_traffic_loses_nothing_and_never_mixes_versions(
    runtime: DecisionRuntime, files: dict[str, Any]
) -> None:
    install(files, "A")
    runtime.reload(force=True, include_model=False)
    app = create_app()
    app.state.runtime = runtime
    stop = threading.Event()
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def traffic(worker: int) -> None:
        with TestClient(app) as c:
            i = 0
            while not stop.is_set():
                customer = 1 + (worker * 37 + i) % 150
                r = c.post("/decide", json={"customer_id": customer, "channel": "email"})
                with lock:
                    results.append((r.status_code, r.json()))
                i += 1

    def swap() -> None:
        for k in range(24):
            install(files, "B" if k % 2 == 0 else "A")
            runtime.reload(force=True, include_model=False)
            time.sleep(0.03)
        stop.set()

    threads = [threading.Thread(target=traffic, args=(w,)) for w in range(4)] + [threading.Thread(target=swap)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert len(results) >= 50 and all(code == 200 for code, _ in results)
    decisions = [d for _, d in results]
    assert all(d["decision_id"] and d["action"] for d in decisions)
    versions = {d["ruleset_version"] for d in decisions}
    assert versions == {files["A"], files["B"]}  # both versions served while files were swapped
    for d in decisions:
        assert not d["degraded"], d["reason"]
        if d["ruleset_version"] == files["B"]:  # B pauses the newsletter for everyone
            assert d["action"] != "email_promo" and "freeze_email_promo" in email_promo_rules(d)
        else:
            assert "freeze_email_promo" not in email_promo_rules(d)
    assert runtime.components.policy_status.rejected == 0


def test_an_invalid_file_is_rejected_whole_and_reported(
    runtime: DecisionRuntime, client: TestClient, files: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    install(files, "A")
    runtime.reload(force=True, include_model=False)
    labels = {"kind": "rules", "result": "rejected"}
    before = REGISTRY.get_sample_value("nextbest_reloads_total", labels) or 0.0
    install(files, "bad")  # B's valid freeze rule plus a broken one: nothing of it may apply
    with caplog.at_level(logging.ERROR, logger="nextbest.serving.components"):
        result = client.post("/admin/reload").json()
    error = result["rules"]["error"]
    assert str(files["live"]) in error and "rule broken_rule" in error and "invalid CEL" in error
    assert result["rules"]["ruleset_version"] == files["A"] and not result["rules"]["reloaded"]
    d = client.post("/decide", json={"customer_id": 5, "channel": "email"}).json()
    assert d["ruleset_version"] == files["A"] and "freeze_email_promo" not in email_promo_rules(d)
    ready = client.get("/ready").json()
    assert ready["ruleset_version"] == files["A"] and "rule broken_rule" in ready["details"]["last_reload_error"]
    assert any("reload rejected" in x and "broken_rule" in x for x in ready["degraded"])
    assert REGISTRY.get_sample_value("nextbest_reloads_total", labels) == before + 1
    assert any("rejected rules/catalog reload" in r.message and "broken_rule" in r.getMessage() for r in caplog.records)
    install(files, "B")  # fixed: the next reload applies and clears the error
    assert client.post("/admin/reload").json()["rules"]["ruleset_version"] == files["B"]
    assert client.get("/ready").json()["details"]["last_reload_error"] is None
    files["catalog"].write_text("channels: [email\n")  # a broken catalog is rejected the same way
    result = runtime.reload(force=True, include_model=False)
    assert "actions.yaml" in result["rules"]["error"] and result["rules"]["ruleset_version"] == files["B"]
    shutil.copy(PROJECT / "catalog" / "actions.yaml", files["catalog"])
    runtime.reload(force=True, include_model=False)


def test_shadow_rules_change_nothing_but_appear_in_the_log(
    runtime: DecisionRuntime, client: TestClient, files: dict[str, Any]
) -> None:
    from prometheus_client import REGISTRY

    def decide_all() -> list[dict[str, Any]]:
        return [client.post("/decide", json={"customer_id": c, "channel": "email"}).json() for c in range(1, 61)]

    install(files, "A")
    runtime.reload(force=True, include_model=False)
    plain = decide_all()
    install(files, "C")
    assert runtime.reload(force=True, include_model=False)["rules"]["ruleset_version"] == files["C"]
    counted = REGISTRY.get_sample_value("nextbest_shadow_hits_total", {"rule": "shadow_email_freeze"}) or 0.0
    shadowed = decide_all()
    assert [(d["action"], d["greedy_action"]) for d in shadowed] == [(d["action"], d["greedy_action"]) for d in plain]
    assert all(d["ruleset_version"] == files["C"] for d in shadowed)
    hit = [d for d in shadowed if any(h["rule_id"] == "shadow_email_freeze" for h in d["shadow"])]
    assert len(hit) == len(shadowed)  # email_promo is a candidate of every email decision
    after = REGISTRY.get_sample_value("nextbest_shadow_hits_total", {"rule": "shadow_email_freeze"})
    assert after == counted + sum(h["rule_id"] == "shadow_email_freeze" for d in shadowed for h in d["shadow"])
    assert all("shadow_email_freeze" not in email_promo_rules(d) for d in shadowed)  # reported, not applied
    for d in hit[:10]:
        stored = runtime.backends.log.get(d["decision_id"])
        assert stored is not None and stored.ruleset_version == files["C"]
        logged = [h for h in stored.rule_hits if h.get("rule_id") == "shadow_email_freeze"]
        assert logged and logged[0]["mode"] == "shadow" and logged[0]["action"] == "email_promo"
        assert any(h["rule_id"] == "shadow_email_freeze" for h in stored.response["shadow"])
