"""Fitting the overlap guard on a log: only where overlap can be thin, with a propensity model that fits it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.core.catalog import ActionCatalog
from nextbest.model.policy_model import PolicyModel
from nextbest.training.config import BoosterParams, TrainConfig
from nextbest.training.dataset import from_frame
from nextbest.training.learners import FitData
from nextbest.training.overlap import fit_overlap, thin_log
from nextbest.training.pipeline import train

CATALOG = ActionCatalog.model_validate(
    {
        "channels": ["email"],
        "control": "hold",
        "actions": [
            {"id": "offer", "channels": ["email"], "category": "promo", "value": 1, "cost": 0.1},
            {"id": "hold", "channels": ["email"], "category": "none", "value": 0, "cost": 0},
        ],
    }
)
OFFER, HOLD = CATALOG.index["offer"], CATALOG.index["hold"]


def log(n: int, seed: int, confounded: bool) -> tuple[FitData, np.ndarray]:
    """A log whose probability of the offer is sigmoid(-2.5 (x0 + x1)) when confounded (0.1%-99.9%), else 0.5;
    returns it and each row's true probability of the offer."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    p_offer = 1 / (1 + np.exp(2.5 * (X[:, 0] + X[:, 1]))) if confounded else np.full(n, 0.5)
    offered = rng.random(n) < p_offer
    action = np.where(offered, OFFER, HOLD)
    propensity = np.where(offered, p_offer, 1 - p_offer)
    return FitData(X, action, np.zeros(n, dtype=np.int64), propensity), p_offer


def members(n: int, x0: np.ndarray) -> list[np.ndarray]:
    """Two learners' net values: they agree the offer pays (+0.2) where x0 < 1, and disagree beyond."""
    a = np.zeros((n, 2))
    b = np.zeros((n, 2))
    a[:, OFFER] = 0.2
    b[:, OFFER] = np.where(x0 < 1, 0.3, -0.3)
    return [a, b]


def test_only_a_log_with_thin_overlap_needs_the_guard() -> None:
    assert not thin_log(np.full(100, 0.5), 0.05)
    assert thin_log(np.array([0.5, 0.97]), 0.05)  # the control was left at 3% for the second customer
    assert thin_log(np.array([0.5, 0.02]), 0.05)
    assert not thin_log(np.full(100, 0.97), 0.05)  # a 97/3 trial: thin for everyone alike, no region to set apart
    d, _ = log(3000, 0, confounded=False)
    action = np.where(np.random.default_rng(0).random(len(d)) < 0.97, OFFER, HOLD)
    trial = FitData(d.X, action, d.y, np.where(action == OFFER, 0.97, 0.03))
    q = members(len(d), d.X[:, 0])
    assert (
        fit_overlap(trial, np.arange(len(d)) % 3, CATALOG, q, q[0], np.array([0.1, 0.0]), q[0], 0.05, (), 0, 2) is None
    )
    d, _ = log(4000, 0, confounded=False)
    q = members(len(d), d.X[:, 0])
    assert fit_overlap(d, np.arange(len(d)) % 3, CATALOG, q, q[0], np.array([0.1, 0.0]), q[0], 0.05, (), 0, 2) is None


def truth(x0: np.ndarray, effect_beyond: float) -> np.ndarray:
    """Net values with the offer's effect +0.2 where x0 < 1 and ``effect_beyond`` elsewhere (as DR targets)."""
    out = np.zeros((x0.size, 2))
    out[:, OFFER] = np.where(x0 < 1, 0.2, effect_beyond)
    return out


def test_the_guard_acts_where_the_log_rarely_offered_and_the_learners_disagree() -> None:
    d, p_offer = log(20_000, 1, confounded=True)
    q = members(len(d), d.X[:, 0])
    blend = (q[0] + q[1]) / 2
    average = np.array([0.15, 0.0])
    folds = np.arange(len(d)) % 3
    gamma = truth(d.X[:, 0], 0.2)
    assert fit_overlap(d, folds, CATALOG, q[:1], q[0], average, gamma, 0.05, (), 0, 2) is None  # one learner
    assert fit_overlap(d, folds, CATALOG, q, blend, average, gamma, 0.0, (), 0, 2) is None  # switched off
    fit = fit_overlap(d, folds, CATALOG, q, blend, average, gamma, 0.05, (), 0, 2)
    assert fit is not None and fit.taken
    estimated = fit.guard.propensity(d.X, CATALOG.ids)[:, OFFER]
    assert np.mean(np.abs(estimated - p_offer)) < 0.03
    assert fit.evidence["propensity_mean_abs_error"] < 0.05
    guarded = fit.mask[:, OFFER]
    disagree = d.X[:, 0] >= 1
    assert not guarded[~disagree].any()  # where the learners agree nothing changes, however thin
    assert guarded[disagree & (p_offer < 0.01)].mean() > 0.95  # thin (the log offered at < 1%) and disagreeing
    assert guarded[disagree & (p_offer > 0.2) & (p_offer < 0.8)].mean() < 0.02  # overlap fine
    effect = fit.q_blend[:, OFFER] - fit.q_blend[:, HOLD]
    assert np.allclose(effect[guarded], 0.15)  # the average effect: the offer pays, as both learners say on average
    assert np.array_equal(fit.q_blend[~guarded], blend[~guarded])
    assert fit.evidence["guarded_share"] == guarded.mean()
    assert fit.evidence["value_difference"]["value"] > 0  # the truth: the offer pays there too


def test_a_guard_that_loses_value_out_of_fold_is_not_taken() -> None:
    d, _ = log(20_000, 1, confounded=True)
    q = members(len(d), d.X[:, 0])
    gamma = truth(d.X[:, 0], -0.5)  # where the learners disagree the offer really loses: the average is wrong
    fit = fit_overlap(
        d, np.arange(len(d)) % 3, CATALOG, q, (q[0] + q[1]) / 2, np.array([0.15, 0.0]), gamma, 0.05, (), 0, 2
    )
    assert fit is not None and not fit.taken
    assert fit.evidence["value_difference"]["value"] < 0 and fit.mask.any()


def confounded_log(n: int, seed: int) -> pd.DataFrame:
    """A continuous outcome whose baseline rises with x0 + x1, where the log offered mostly to customers with a low
    one (P(offer) = sigmoid(-3 (x0 + x1)): 0.1%-99.9%); the offer adds 0.5 for everyone and costs 0.1, so offering
    to everyone is right."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    e = 1 / (1 + np.exp(3 * (x[:, 0] + x[:, 1])))
    offered = rng.random(n) < e
    y = 2 * np.maximum(x[:, 0] + x[:, 1], 0) + x[:, 2] + 0.5 * offered + rng.normal(size=n)
    return pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(
        customer_id=[f"C{i:06d}" for i in range(n)],
        action=np.where(offered, "offer", "hold"),
        converted=(y > 0).astype(int),
        revenue=y,
        propensity=np.where(offered, e, 1 - e),
    )


def test_a_model_trained_on_a_confounded_log_carries_the_guard_and_it_treats_more_of_those_who_gain(
    tmp_path: Path,
) -> None:
    ds = from_frame(confounded_log(8000, 3), CATALOG, "file:confounded.parquet")
    cfg = TrainConfig(grid=(BoosterParams(num_leaves=7, min_child_samples=50, learning_rate=0.1),), threads=2)
    result = train(ds, CATALOG, cfg)
    model = result.model
    assert sum(1 for m in model.members if m.head is not None and m.weight > 0) >= 2, result.blend
    assert model.overlap is not None
    assert model.metadata["overlap_guard"]["guarded_share"] > 0
    assert any(n.startswith("overlap guard:") for n in result.notes)
    held = confounded_log(4000, 4)
    X = model.encoder.transform_frame(held)
    _, revenue, average_effect = model.score(X)
    _, unguarded = replace(model, overlap=None).predict(X)
    # the scores say where the average effect stood in: exactly where the guard changed them
    assert average_effect is not None and not average_effect[:, HOLD].any()
    changed = np.abs(revenue[:, OFFER] - unguarded[:, OFFER]) > 1e-9  # (r - cost) + cost: rounding elsewhere
    np.testing.assert_array_equal(average_effect[:, OFFER], changed)
    net = revenue - CATALOG.costs[None, :]
    net_unguarded = unguarded - CATALOG.costs[None, :]
    treated = (net[:, OFFER] > net[:, HOLD]).mean()
    assert treated > (net_unguarded[:, OFFER] > net_unguarded[:, HOLD]).mean()  # the truth: treat everyone
    loaded = PolicyModel.load(model.save(tmp_path / "model"))
    assert loaded.overlap is not None
    np.testing.assert_array_equal(loaded.predict(X)[1], revenue)


def test_no_guard_with_several_actions_besides_the_control() -> None:
    """The log gives only the taken action's probability, and the choice between actions is not each one's sign."""
    catalog = ActionCatalog.model_validate(
        {**CATALOG.model_dump(mode="json"), "actions": [*CATALOG.model_dump(mode="json")["actions"],
         {"id": "call", "channels": ["email"], "category": "promo", "value": 1, "cost": 0.3}]}
    )  # fmt: skip
    d, _ = log(3000, 2, confounded=True)
    q = [np.column_stack([m, m[:, 0]]) for m in members(len(d), d.X[:, 0])]
    folds = np.arange(len(d)) % 3
    average = np.array([0.15, 0.0, 0.0])
    assert thin_log(np.where(d.action == OFFER, d.propensity, 1 - d.propensity), 0.05)
    assert fit_overlap(d, folds, catalog, q, q[0], average, q[0], 0.05, (), 0, 2) is None
