"""The training job on someone else's data: a value unit of 1, a control not called no_action, every row used."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.core.arbitration import choose, score_breakdown
from nextbest.core.catalog import ActionCatalog
from nextbest.training.config import BoosterParams, TrainConfig
from nextbest.training.dataset import from_frame
from nextbest.training.pipeline import train

CATALOG = ActionCatalog.model_validate(
    {
        "channels": ["email"],
        "control": "no_email",
        "actions": [
            {"id": "no_email", "channels": ["email"], "category": "none", "value": 0, "cost": 0},
            {"id": "mens_email", "channels": ["email"], "category": "promo", "value": 1, "cost": 0.05},
            {"id": "womens_email", "channels": ["email"], "category": "promo", "value": 1, "cost": 0.05},
        ],
    }
)
CFG = TrainConfig(grid=(BoosterParams(num_leaves=7, min_child_samples=100, learning_rate=0.1),), threads=2)


def visits(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """An e-mail test with weak heterogeneity: a visit is worth 1, an e-mail costs 0.05, the men's e-mail
    lifts visits by about 0.08 for everyone (so it pays for almost everyone), the women's by 0.04 (it does
    not). Returns the log and the true net value of each action per row."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    base = 0.10 + 0.03 * np.tanh(x[:, 1])
    p = np.column_stack([base, base + 0.08 + 0.02 * np.tanh(x[:, 0]), base + 0.04])
    action = rng.integers(0, 3, n)
    visited = (rng.random(n) < p[np.arange(n), action]).astype(int)
    frame = pd.DataFrame(x, columns=["recency", "history", "web", "zip"]).assign(
        customer_id=[f"C{i:07d}" for i in range(n)],
        action=np.array(CATALOG.ids)[action],
        converted=visited,
        revenue=visited * 1.0,
        propensity=1 / 3,
    )
    return frame, p - CATALOG.costs[None, :]


@pytest.fixture(scope="module")
def trained():  # type: ignore[no-untyped-def]
    frame, _ = visits(60_000, 1)
    ds = from_frame(frame, CATALOG, "file:visits.parquet")
    return ds, train(ds, CATALOG, CFG)


def test_a_value_unit_of_one_acts_where_acting_pays(trained) -> None:  # type: ignore[no-untyped-def]
    """Where a conversion is worth 1, a margin in currency (EUR 0.25) never let any e-mail through; the
    scale-free rule e-mails nearly everyone the better e-mail, as the truth says it should."""
    _, result = trained
    model = result.model
    assert model.control == "no_email" and model.value_scale is not None
    assert model.decision_margin <= 0.05 * model.value_scale + 1e-12 < 0.25  # in the data's own scale
    assert model.decision_margin >= CFG.decision_margin_floor * model.value_scale - 1e-12 > 0  # at least the floor
    fresh, truth = visits(20_000, 2)
    p, revenue = model.predict(model.encoder.transform_frame(fresh))
    net = score_breakdown(CATALOG, CATALOG.ids, p, revenue).net_value
    chosen = choose(net, np.ones(net.shape, bool), 0, model.decision_margin)
    # the oracle e-mails everyone the men's e-mail; on this log the model does for 84% (out-of-fold stopping
    # on the folds' own rows; over data seeds 1 and 3-7 lift capture 0.90-1.00, mean 0.98), the old rule for 0%
    assert (chosen == 1).mean() > 0.8, np.bincount(chosen, minlength=3)
    value, nothing, oracle = truth[np.arange(len(chosen)), chosen].mean(), truth[:, 0].mean(), truth.max(1).mean()
    assert (value - nothing) / (oracle - nothing) > 0.85


def test_the_model_is_refitted_on_every_row_and_evaluated_out_of_fold(trained) -> None:  # type: ignore[no-untyped-def]
    ds, result = trained
    assert result.model.metadata["training_rows"] == len(ds.frame) == result.sizes["train"]
    assert result.sizes["test"] == 0 and result.report.n == len(ds.frame)  # every row evaluated, out of fold
    assert result.model.metadata["catalog"]["control"] == "no_email"
    assert any("P(convert)" in note for note in result.notes)  # one revenue per visit: a conversion model


def test_the_blend_gate_records_the_policy_value_of_its_decisions_as_evidence(trained) -> None:  # type: ignore[no-untyped-def]
    """Beside the gate on the contrasts, the selection evidence holds the blend's out-of-fold DR policy value
    against the anchor's (``stacking.policy_gate``), consistent with its own bar; it decides nothing."""
    from nextbest.training.stacking import GATE_Z

    _, result = trained
    blend = result.chosen.valid_value["selection"]["gates"]["blend"]
    evidence = blend["policy_value"]
    assert set(evidence) == {"difference", "se", "beyond_z"} and evidence["se"] > 0
    assert evidence["beyond_z"] == (evidence["difference"] > GATE_Z * evidence["se"])
    assert isinstance(blend["taken"], bool)  # the contrasts' gate decides, as before


def test_a_held_out_test_split_is_still_available(trained) -> None:  # type: ignore[no-untyped-def]
    ds, _ = trained
    result = train(ds, CATALOG, CFG.model_copy(update={"test_fraction": 0.3, "learners": ("s",)}))
    n = len(ds.frame)
    assert result.sizes["train"] + result.sizes["test"] == n and 0.25 * n < result.sizes["test"] < 0.35 * n
    assert result.model.metadata["training_rows"] == result.sizes["train"]


def test_an_outcome_that_is_never_zero_trains_on_revenue() -> None:
    """A spend per customer that is above 0 on every row and no ``converted`` column: every row counts as
    converted, so there is no conversion to model (P(convert) is 1) and no AUC to report. The job used to
    fail at its evaluation ("roc_auc needs both positive and negative labels") after every fit; it models
    revenue, reports the AUC as undefined, and decides where the second e-mail pays."""
    rng = np.random.default_rng(4)
    n = 6_000
    x = rng.normal(size=(n, 3))
    mean = np.column_stack([np.full(n, 2.0), 2.0 + 0.6 * (x[:, 0] > 0) - 0.3, np.full(n, 2.0)])
    action = rng.integers(0, 3, n)
    spend = np.clip(mean[np.arange(n), action] + rng.normal(0, 0.5, n), 0.01, None)
    frame = pd.DataFrame(x, columns=["recency", "history", "web"]).assign(
        customer_id=[f"S{i}" for i in range(n)],
        action=np.array(CATALOG.ids)[action],
        revenue=spend,
        propensity=1 / 3,
    )
    ds = from_frame(frame, CATALOG, "file:spend.parquet")
    assert ds.frame["converted"].min() == 1
    result = train(ds, CATALOG, CFG.model_copy(update={"learners": ("s", "t")}))
    assert any("every row converted" in note for note in result.notes), result.notes
    assert result.report.propensity["auc"] is None
    assert "propensity_auc" not in result.report.headline()
    model = result.model
    p, revenue = model.predict(model.encoder.transform_frame(frame))
    net = score_breakdown(CATALOG, CATALOG.ids, p, revenue).net_value
    chosen = choose(net, np.ones(net.shape, bool), 0, model.decision_margin)
    gains = x[:, 0] > 0  # the men's e-mail adds 0.25 net of its cost there and loses 0.35 elsewhere
    assert (chosen[gains] == 1).mean() > 0.8 and (chosen[~gains] == 1).mean() < 0.2


def test_an_effect_the_same_for_everyone_treats_everyone_through_a_saved_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A continuous outcome with a difficult baseline and an effect that is the same for every customer (the
    men's e-mail adds 0.5 net of its cost; the women's loses 0.1): the learners' differences between customers
    are their own noise, explain nothing out of fold, and give way to the average, so every customer gets the
    men's e-mail, after a save and load too."""
    from nextbest.model.policy_model import PolicyModel

    def log(n: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 4))
        base = 2.0 * np.log1p(np.exp(x[:, 0] + x[:, 1] + x[:, 2]))
        effect = np.array([0.0, 0.55, -0.05])
        action = rng.integers(0, 3, n)
        return pd.DataFrame(x, columns=["recency", "history", "web", "zip"]).assign(
            customer_id=[f"E{i}" for i in range(n)],
            action=np.array(CATALOG.ids)[action],
            revenue=base + effect[action] + rng.normal(0.0, 1.0, n),
            converted=1,
            propensity=1 / 3,
        )

    frame = log(9_000, 11)
    result = train(
        from_frame(frame, CATALOG, "file:spend.parquet"), CATALOG, CFG.model_copy(update={"learners": ("s", "t")})
    )
    gates = result.chosen.valid_value["selection"]["gates"]["shrinkage"]
    assert gates["spread"]["loss_difference"] >= 0 and gates["weight"] == 1.0, gates
    assert result.model.metadata["blend"] == {"average": 1.0}
    fresh = log(5_000, 12)
    for model in (result.model, PolicyModel.load(result.model.save(tmp_path / "model"))):
        p, revenue = model.predict(model.encoder.transform_frame(fresh))
        net = score_breakdown(CATALOG, CATALOG.ids, p, revenue).net_value
        chosen = choose(net, np.ones(net.shape, bool), 0, model.decision_margin)
        assert (chosen == 1).all(), np.bincount(chosen, minlength=3)
