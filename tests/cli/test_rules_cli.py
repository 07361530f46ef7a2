"""``nextbest rules check|test|simulate`` through the real CLI: one-line errors naming file, rule and problem;
exit codes (0 ok, 1 failed check or test, 2 usage or configuration); a what-if on a log the runtime wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nextbest.cli import main
from nextbest.settings import Settings, load_settings

PROJECT = Path(__file__).resolve().parents[2]
RULES = PROJECT / "rules" / "guardrails.yaml"
ANCHOR = "    when: \"action.category == 'promo' && has(customer.open_tickets) && customer.open_tickets > 0\"\n"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The CLI in process: (exit code, stdout, stderr)."""
    try:
        code = main(args)
        code = 0 if code is None else int(code)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("NEXTBEST_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path_factory.mktemp("cli-home")))
    monkeypatch.setenv("NEXTBEST_PROJECT_DIR", str(PROJECT))


BAD_FILES = {
    # kind: (replacement of the no_promo_open_ticket condition line, words the message must contain)
    "yaml syntax": ("    when: action.id: x\n", ("not valid YAML", "mapping values are not allowed")),
    "unknown field": (ANCHOR + "    colour: red\n", ("unknown field 'colour'",)),
    "bad CEL": (ANCHOR.replace("&& has", "&&& has"), ("invalid CEL",)),
    "unknown feature": (ANCHOR.replace("customer.open_tickets > 0", "customer.open_ticket > 0"),
                        ("unknown feature customer.open_ticket", "did you mean customer.open_tickets")),
    "type mismatch": (ANCHOR.replace("customer.open_tickets > 0", "customer.tier > 3"),
                      ("type mismatch", "customer.tier is string")),
}  # fmt: skip


def bad_copy(tmp_path: Path, kind: str) -> Path:
    text = RULES.read_text()
    assert text.count(ANCHOR) == 1
    path = tmp_path / f"{kind.replace(' ', '_')}.yaml"
    path.write_text(text.replace(ANCHOR, BAD_FILES[kind][0]))
    return path


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_every_bad_file_kind_is_one_line_naming_file_rule_and_problem(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bad_copy(tmp_path, kind)
    code, out, err = run(["rules", "check", str(path)], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1, err
    assert len(errors) == 1, err
    assert str(path) in errors[0] and "rule no_promo_open_ticket" in errors[0]
    for words in BAD_FILES[kind][1]:
        assert words in errors[0]
    if kind == "yaml syntax":
        line = RULES.read_text().split(ANCHOR)[0].count("\n") + 1
        assert f"line {line}:" in errors[0]
    assert "Traceback" not in err + out


def test_the_shipped_rules_pass_and_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["rules", "check"], capsys)
    assert code == 0 and "ok" in out and str(RULES) in out and not [x for x in err.splitlines() if "error" in x]
    code, _, err = run(["rules", "check", "/no/such/rules.yaml"], capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = run(["rules", "simulate"], capsys)
    assert code == 2 and "--proposed" in err


def test_a_subprocess_reports_a_bad_file_on_one_line(tmp_path: Path) -> None:
    path = bad_copy(tmp_path, "bad CEL")
    env = {**os.environ, "NEXTBEST_HOME": str(tmp_path / "home")}
    env.pop("NEXTBEST_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "nextbest.cli", "rules", "check", str(path)], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert [line for line in lines if line.startswith("error:")] == lines[:1]
    assert str(path) in lines[0] and "rule no_promo_open_ticket" in lines[0] and "invalid CEL" in lines[0]


def test_rule_cases_pass_and_a_wrong_expectation_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["rules", "test"], capsys)
    assert code == 0 and "cases passed" in out and "18/18 rules have a firing and a non-firing case" in out
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "cases:\n  - name: tickets do not pause promotions\n    rules: [no_promo_open_ticket]\n"
        "    customer: {open_tickets: 2}\n    expect: {email_promo: allowed}\n"
    )
    code, out, err = run(["rules", "test", str(wrong)], capsys)
    assert code == 1 and "FAIL" in out
    assert "wrong.yaml: tickets do not pause promotions: FAIL: email_promo: expected allowed, got suppressed" in err
    extra = tmp_path / "extra.yaml"
    doc = yaml.safe_load(RULES.read_text())
    doc["rules"].append({"id": "untested", "description": "d", "owner": "o", "when": "action.id == 'email_promo'",
                         "effect": "suppress", "message": "m"})  # fmt: skip
    extra.write_text(yaml.safe_dump(doc, sort_keys=False))
    code, out, _ = run(["rules", "test", str(PROJECT / "rules" / "cases"), "--rules", str(extra)], capsys)
    assert code == 1 and "untested" in out and "18/19 rules" in out


# What-if on a log written by the real runtime ------------------------------------------------------------------
PROMOS = ("email_promo", "discount_10", "discount_20", "push_nudge")
TRIAL = {"id": "promo_pause", "description": "Trial: pause all promotions.", "owner": "crm@example.com",
         "when": "action.category == 'promo'", "effect": "suppress", "message": "Paused", "mode": "shadow"}  # fmt: skip


@pytest.fixture(scope="module")
def served(settings: Settings, champion: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """300 decisions by the runtime under the shipped rules plus a shadow trial, each with feedback."""
    import numpy as np

    from nextbest.serving.runtime import build_runtime
    from nextbest.serving.schemas import DecideRequest, FeedbackRequest

    tmp = tmp_path_factory.mktemp("whatif")
    doc = yaml.safe_load(RULES.read_text())
    live, proposed = tmp / "live.yaml", tmp / "proposed.yaml"
    live.write_text(yaml.safe_dump({**doc, "rules": [*doc["rules"], TRIAL]}, sort_keys=False))
    proposed.write_text(
        yaml.safe_dump({**doc, "rules": [*doc["rules"], {**TRIAL, "mode": "enforce"}]}, sort_keys=False)
    )
    env = {"NEXTBEST_HOME": str(settings.home), "NEXTBEST_DATA_DIR": str(settings.data_dir),
           "NEXTBEST_RULES_PATH": str(live), "NEXTBEST_DECISION_LOG_URL": f"sqlite:///{tmp / 'decisions.db'}",
           "NEXTBEST_SERVING__EXPLORATION_RATE": "0.2"}  # fmt: skip
    live_settings = load_settings(home=settings.home, data_dir=settings.data_dir, rules_path=live,
                                  decision_log_url=env["NEXTBEST_DECISION_LOG_URL"],
                                  serving={"exploration_rate": 0.2})  # fmt: skip
    runtime = build_runtime(live_settings)
    rng = np.random.default_rng(3)
    decisions = []
    for customer in range(1, 301):
        context = {"page": "cart"} if customer % 3 == 0 else {}
        d = runtime.decide(DecideRequest(customer_id=customer, channel="any", context=context))
        converted = rng.random() < 0.15
        fb = FeedbackRequest(decision_id=d.decision_id, type="conversion" if converted else "impression",
                             revenue=float(rng.integers(20, 90)) if converted else None)  # fmt: skip
        runtime.feedback(fb)
        decisions.append(d)
    runtime.backends.log.close()
    return {"env": env, "proposed": proposed, "decisions": decisions, "out": tmp / "report"}


def test_simulate_replays_the_log_and_writes_the_report(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key, value in served["env"].items():
        monkeypatch.setenv(key, value)
    out_dir = served["out"]
    code, out, err = run(["rules", "simulate", "--proposed", str(served["proposed"]), "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert {"simulation.png", "simulation.html", "simulation.json"} <= {p.name for p in out_dir.iterdir()}
    assert (out_dir / "simulation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out_dir / "simulation.html").read_text()
    assert "data:image/png;base64," in html and "promo_pause" in html
    report = json.loads((out_dir / "simulation.json").read_text())
    decisions = [d for d in served["decisions"] if not d.degraded]
    promos = sum(d.greedy_action in PROMOS for d in decisions)
    assert report["decisions"] == len(decisions) and report["replay_agreement"] == 1.0
    assert report["changed"] == promos > 0  # every greedy promotion is paused, nothing else moves
    assert all(t["from"] in PROMOS and t["to"] not in PROMOS for t in report["transitions"] if t["from"] != t["to"])
    trial = next(r for r in report["rules"] if r["rule_id"] == "promo_pause")
    shadow_logged = sum(any(h.rule_id == "promo_pause" for h in d.shadow) for d in decisions)
    assert (trial["live_mode"], trial["proposed_mode"]) == ("shadow", "enforce")
    assert trial["live_hits"] == trial["proposed_hits"] == shadow_logged > 0  # the replay matches the log
    assert report["value"]["basis"] == "off-policy" and set(report["value"]["change"]) == {
        "dr",
        "snips",
        "ips",
        "model",
    }
    assert f"{promos:,} decisions" in out and "Estimated change in net value" in out and "simulation.html" in out


def test_replay_sees_the_logged_request_context(served: dict[str, Any]) -> None:
    from nextbest.core.catalog import load_catalog
    from nextbest.io.decision_log import open_decision_log
    from nextbest.serving.simulation_data import rows_from_log

    log_ = open_decision_log(served["env"]["NEXTBEST_DECISION_LOG_URL"])
    try:
        rows = rows_from_log(log_, load_catalog(PROJECT / "catalog" / "actions.yaml"), since=0).rows
    finally:
        log_.close()
    assert rows and {r.decision_id for r in rows} <= {d.decision_id for d in served["decisions"]}
    assert {r.customer_id for r in rows if r.context == {"page": "cart"}} == {
        r.customer_id for r in rows if int(r.customer_id) % 3 == 0
    }


def test_simulate_on_sampled_customers_is_model_based(
    served: dict[str, Any], feature_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for key, value in served["env"].items():
        monkeypatch.setenv(key, value)
    args = ["rules", "simulate", "--proposed", str(served["proposed"]), "--source", "customers", "--limit", "150"]
    code, out, err = run([*args, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "simulation.json").read_text())
    assert report["source"] == "customers" and report["value"]["basis"] == "model"
    assert set(report["value"]["change"]) == {"model"} and "model-based" in out


def test_check_with_a_sample_of_real_customers(
    served: dict[str, Any], feature_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for key, value in served["env"].items():
        monkeypatch.setenv(key, value)
    code, out, err = run(["rules", "check", "--sample", "200"], capsys)
    assert code == 0 and "200 customers, online store" in out, out + err
    assert "warning:" in err and "on the 200 sample customers" in err  # e.g. rules that never fire on them
    monkeypatch.setenv("NEXTBEST_HOME", str(tmp_path))  # no feature store here: the feature tables are read
    code, out, err = run(["rules", "check", "--sample", "200"], capsys)
    assert code == 0 and "200 customers, feature tables" in out, out + err
