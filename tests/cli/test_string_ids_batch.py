"""Data people have, through the command line: a training file keyed by CRM ids and UUIDs with a catalog whose
control is not ``no_action``, trained with ``nextbest train --data``, then ``nextbest decide-batch`` with the
model's own catalog (the settings still point at ``catalog/actions.yaml``), an explicit ``--catalog`` that must
fit the model, and the default guardrails reading customer features the file does not have."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nextbest.settings import Settings
from tests.cli.test_cli_errors import assert_one_line_error, run_cli

PROJECT = Path(__file__).resolve().parents[2]
CATALOG = """\
version: hold-1
currency: EUR
channels: [email, web]
control: hold
actions:
  - {id: hold, channels: [email, web], category: none, value: 0, cost: 0}
  - {id: offer_a, channels: [email], category: promo, value: 40, cost: 0.5, consent: email}
  - {id: offer_b, channels: [web], category: reminder, value: 30, cost: 0.1}
"""


def customer_ids(n: int, rng: np.random.Generator) -> list[str]:
    """CRM ids (zero-padded: "C0000042"), bare zero-padded numbers ("0000042": not the number 42) and UUIDs."""
    uuids = [str(uuid.UUID(int=int(v))) for v in rng.integers(2**62, size=n)]
    return [(f"C{i:07d}", f"{i:07d}", uuids[i])[i % 3] for i in range(n)]


def frame(n: int, seed: int) -> pd.DataFrame:
    """Logged decisions: offer_a lifts the young, offer_b the big spenders (a known effect to learn)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    spend = rng.gamma(2.0, 50.0, n)
    tier = rng.choice(["bronze", "silver", "gold"], n)
    action = rng.choice(["hold", "offer_a", "offer_b"], n)
    base = 0.05 + 0.05 * (tier == "gold")
    lift = np.where(action == "offer_a", 0.15 * (age < 35), 0.0) + np.where(action == "offer_b", 0.1 * (spend > 120), 0)
    return pd.DataFrame(
        {
            "customer_id": customer_ids(n, rng),
            "event_timestamp": pd.Timestamp("2026-10-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, n), "s"),
            "age": age,
            "spend_90d": spend,
            "tier": tier,
            "action": action,
            "propensity": 1 / 3,
            "converted": (rng.random(n) < base + lift).astype(int),
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home with a model trained (``nextbest train --data``) on string ids with the ``hold`` catalog."""
    root = tmp_path_factory.mktemp("byo")
    (root / "hold.yaml").write_text(CATALOG)
    data = frame(6_000, 1)
    data.to_parquet(root / "train.parquet")
    result = run_cli(
        ["train", "--data", str(root / "train.parquet"), "--catalog", str(root / "hold.yaml"),
         "--config", str(PROJECT / "training" / "configs" / "retrain.yaml")],
        root / "home",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    # what the file lacked is said where the user looks, not only in MLflow's tags
    assert "note: no 'revenue' column: revenue = converted x catalog value" in result.stdout, result.stdout
    return {"root": root, "home": root / "home", "data": data}


def decide(trained: dict[str, Any], inputs: Path, *extra: str) -> Any:
    out = trained["root"] / f"out-{uuid.uuid4().hex[:6]}.parquet"
    args = ["decide-batch", "--input", str(inputs), "--output", str(out), "--model", "challenger", *extra]
    return run_cli(args, trained["home"]), out


def test_decide_batch_uses_the_models_own_catalog_and_keeps_string_ids(trained: dict[str, Any]) -> None:
    customers = frame(500, 2).drop(columns=["action", "propensity", "converted", "event_timestamp"])
    inputs = trained["root"] / "customers.parquet"
    customers.to_parquet(inputs)
    result, out = decide(trained, inputs)  # NEXTBEST_CATALOG_PATH is the default catalog/actions.yaml
    assert result.returncode == 0, result.stderr[-2000:]
    decided = pd.read_parquet(out)
    assert decided["customer_id"].tolist() == customers["customer_id"].tolist()  # "0000042" stays "0000042"
    assert set(decided["action"]) <= {"hold", "offer_a", "offer_b"} and "offer_b" in set(decided["action"])
    # The default guardrails read consent and ticket features this file does not have: reported once, by rule.
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stdout
    line = warnings[0]
    for rule, feature in [
        ("consent_email", "email_opt_in"),
        ("no_promo_open_ticket", "open_tickets"),
        ("no_reminder_severe_ticket", "max_open_severity"),
    ]:
        assert f"{rule} ({feature})" in line, line
    assert "consent_sms" not in line and "gold_discount_damping" not in line  # no SMS or discount actions here
    # ... and the warning is true: without email_opt_in the consent rule suppresses offer_a for everyone.
    assert decided["suppressed"].str.contains("offer_a:consent_email").all() and "offer_a" not in set(decided["action"])


def test_decide_batch_refuses_a_catalog_that_does_not_fit_the_model(trained: dict[str, Any]) -> None:
    inputs = trained["root"] / "few.csv"
    frame(20, 3).to_csv(inputs, index=False)
    result, out = decide(trained, inputs, "--catalog", str(PROJECT / "catalog" / "actions.yaml"))
    assert_one_line_error(result, "does not fit", "control: 'hold' in the model's catalog, 'no_action' in")
    assert "actions the model was not trained on" in result.stderr and "email_promo" in result.stderr
    assert not out.exists()


def test_decide_batch_takes_a_catalog_with_other_costs_and_says_so(trained: dict[str, Any]) -> None:
    cheaper = trained["root"] / "cheaper.yaml"
    cheaper.write_text(CATALOG.replace("value: 30, cost: 0.1", "value: 30, cost: 25"))
    inputs = trained["root"] / "customers-int.csv"
    customers = frame(300, 4)
    customers["customer_id"] = np.arange(1, 301)  # integer ids work too
    customers.to_csv(inputs, index=False)
    own, own_out = decide(trained, inputs)
    costly, costly_out = decide(trained, inputs, "--catalog", str(cheaper))
    assert own.returncode == 0 and costly.returncode == 0, costly.stderr[-2000:]
    assert "offer_b cost: 0.1 in the model's catalog, 25 in" in costly.stdout.replace("\n", "")
    a, b = pd.read_parquet(own_out), pd.read_parquet(costly_out)
    assert a["customer_id"].tolist() == [str(i) for i in range(1, 301)]
    greedy_a, greedy_b = a["greedy_action"], b["greedy_action"]  # what arbitration chose (before exploration)
    assert (greedy_a == "offer_b").sum() > 0 and (greedy_b == "offer_b").sum() == 0  # 25 is more than any uplift


def test_decide_batch_rejects_ids_that_name_one_customer_twice(trained: dict[str, Any]) -> None:
    inputs = trained["root"] / "dupes.parquet"
    customers = frame(3, 5)
    customers["customer_id"] = [42.0, 7.0, 42.0]  # integer ids read through a float column are still integers
    customers.to_parquet(inputs)
    result, _ = decide(trained, inputs)
    assert_one_line_error(result, "customer_id 42 appears more than once")
    bad = trained["root"] / "bad.csv"
    customers.assign(customer_id=["C1", "", "C3"]).to_csv(bad, index=False)
    result, _ = decide(trained, bad)
    assert_one_line_error(result, "customer_id", "row 1")


def test_the_model_stores_its_catalog(trained: dict[str, Any]) -> None:
    from nextbest.core.catalog import load_catalog
    from nextbest.core.contract import model_catalog

    manifests = list((trained["home"]).rglob("model.json"))
    assert manifests, "the registered model is stored under NEXTBEST_HOME"
    stored = model_catalog(json.loads(manifests[0].read_text())["metadata"])
    assert stored == load_catalog(trained["root"] / "hold.yaml")


def test_features_show_and_decide_batch_from_feast_take_string_ids(
    settings: Settings, feature_store: Any, champion: Any, tmp_path: Path
) -> None:
    env = {"NEXTBEST_DATA_DIR": str(settings.data_dir)}
    shown = run_cli(["features", "show", "12", "--json"], settings.home, **env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["customer_id"] == "12"
    assert_one_line_error(run_cli(["features", "show", "C0000012"], settings.home, **env), "customer C0000012")
    assert_one_line_error(run_cli(["features", "show", " 12"], settings.home, **env), "customer_id", "whitespace")
    inputs = tmp_path / "ids.csv"
    inputs.write_text("customer_id\n12\n0013\nC0000012\n14\n")
    out = tmp_path / "decided.parquet"
    args = ["decide-batch", "--input", str(inputs), "--output", str(out), "--features", "feast"]
    result = run_cli(args, settings.home, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    decided = pd.read_parquet(out)
    assert decided["customer_id"].tolist() == ["12", "0013", "C0000012", "14"]  # "0013" is not customer 13
    known = decided[decided["customer_id"].isin(["12", "14"])]
    assert known["propensity"].notna().all() and len(known) == 2
    assert "warning:" not in result.stdout  # the feature service serves every rule's features
