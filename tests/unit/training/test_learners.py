"""Each learner recovers a known heterogeneous effect on small synthetic data (tolerances stated), and
follows the scikit-learn estimator contract."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from nextbest.core.catalog import ActionCatalog
from nextbest.model.descriptors import ActionDescriptors
from nextbest.training.config import BoosterParams
from nextbest.training.learners import LEARNERS, FitData, SLearner

CATALOG = ActionCatalog.model_validate(
    {
        "channels": ["email"],
        "control": "none",
        "actions": [
            {"id": "none", "channels": ["email"], "category": "none", "value": 0, "cost": 0},
            {"id": "offer", "channels": ["email"], "category": "promo", "value": 50, "cost": 0.1},
            {"id": "nag", "channels": ["email"], "category": "reminder", "value": 50, "cost": 0.1},
        ],
    }
)
FEATURES = ["x0", "x1", "x2"]
TOLERANCE = 0.05  # absolute error allowed on a segment's mean conversion uplift


def true_p(X: np.ndarray, action: np.ndarray) -> np.ndarray:
    base = 1 / (1 + np.exp(-(-1.5 + 0.8 * X[:, 2])))
    offer = np.where(X[:, 0] > 0, 0.20, 0.0)  # only half the customers respond to the offer
    nag = np.where(X[:, 1] > 0, -0.12, 0.02)  # the nag hurts half of them
    effect = np.select([action == 1, action == 2], [offer, nag], 0.0)
    return np.clip(base + effect, 0.01, 0.99)


def make(n: int, seed: int) -> FitData:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    probs = np.where(X[:, [2]] > 0, [0.5, 0.3, 0.2], [0.2, 0.3, 0.5])  # assignment depends on x2: confounded
    action = (rng.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    y = (rng.random(n) < true_p(X, action)).astype(np.int64)
    return FitData(X, action, y, probs[np.arange(n), action])


@pytest.mark.parametrize("kind", ["s", "t", "dr"])
def test_learner_recovers_known_effects(kind: str) -> None:
    train, valid, test = make(24_000, 1), make(6_000, 2), make(4_000, 3)
    params = BoosterParams(num_leaves=7, min_child_samples=100, learning_rate=0.05)
    descriptors = ActionDescriptors.from_catalog(CATALOG, FEATURES)
    est = LEARNERS[kind](params, 30, (), 0, 2, 2, descriptors)
    assert (
        est.fit(
            train.X,
            train.action,
            train.y,
            propensity=train.propensity,
            action_ids=CATALOG.ids,
            control="none",
            eval_set=valid,
        )
        is est
    )
    p = est.predict_proba_all(test.X)
    uplift = p - p[:, [0]]
    truth = np.column_stack([true_p(test.X, np.full(len(test.y), a)) for a in range(3)])
    true_uplift = truth - truth[:, [0]]
    for action, feature in ((1, 0), (2, 1)):
        for segment in (test.X[:, feature] > 0, test.X[:, feature] <= 0):
            got, want = uplift[segment, action].mean(), true_uplift[segment, action].mean()
            assert abs(got - want) < TOLERANCE, (kind, action, got, want)
    # ranking: customers the offer helps are ranked above those it does not
    assert uplift[test.X[:, 0] > 0, 1].mean() - uplift[test.X[:, 0] <= 0, 1].mean() > 0.12


def test_sklearn_contract() -> None:
    est = SLearner(BoosterParams(), early_stopping_rounds=20, seed=3)
    params = est.get_params()
    assert params["seed"] == 3 and params["early_stopping_rounds"] == 20
    copy = clone(est).set_params(seed=9)
    assert copy.get_params()["seed"] == 9 and est.get_params()["seed"] == 3
    assert not hasattr(est, "head_")  # learned attributes only after fit


def test_s_learner_needs_descriptors() -> None:
    d = make(2_000, 5)
    with pytest.raises(ValueError, match="descriptors"):
        SLearner(BoosterParams(max_trees=20)).fit(
            d.X, d.action, d.y, propensity=d.propensity, action_ids=CATALOG.ids, control="none", eval_set=d
        )


@pytest.mark.parametrize("kind", ["s", "t", "dr"])
@pytest.mark.parametrize("objective", ["binary", "regression"])
def test_ladder_scores_every_tree_count_as_one_by_one(kind: str, objective: str) -> None:
    """Cross-fitting compares tree counts with each tree evaluated once (raw scores summed between counts):
    the same predictions as scoring each count from the first tree."""
    train, valid, test = make(6_000, 11), make(2_000, 12), make(1_500, 13)
    y, yv = (train.y, valid.y) if objective == "binary" else (train.y * 40.0, valid.y * 40.0)
    params = BoosterParams(num_leaves=15, min_child_samples=20, learning_rate=0.3, max_trees=300)  # stops early
    descriptors = ActionDescriptors.from_catalog(CATALOG, FEATURES)
    est = LEARNERS[kind](params, 10, (), 0, 2, 2, descriptors, objective=objective, extend=3.0)
    est.fit(train.X, train.action, y, propensity=train.propensity, action_ids=CATALOG.ids, control="none",
            eval_set=FitData(valid.X, valid.action, yv, valid.propensity))  # fmt: skip
    ladder = (1.0, 1.5, 2.0, 3.0)
    staged = est.predict_ladder(test.X, ladder)
    for m, got in zip(ladder, staged, strict=True):
        want = est.predict_all(test.X, multiple=m)
        assert got.shape == want.shape == (len(test.y), 3)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert not np.allclose(staged[0], staged[-1])  # the counts differ, so do the predictions


def test_auto_leaves_are_smaller_on_small_data() -> None:
    from nextbest.training.config import SMALL_DATA_LEAVES, SMALL_DATA_ROWS, TrainConfig, load_train_config

    shipped = load_train_config()  # training/configs/default.yaml
    assert shipped.grid[0].num_leaves == "auto" and TrainConfig().grid[0].num_leaves == "auto"
    assert shipped.for_rows(SMALL_DATA_ROWS - 1).grid[0].num_leaves == SMALL_DATA_LEAVES == 15
    assert shipped.for_rows(SMALL_DATA_ROWS).grid[0].num_leaves == 31
    fixed = TrainConfig(grid=(BoosterParams(num_leaves=63),))
    assert fixed.for_rows(1_000) is fixed  # a number is kept as configured
    # An estimator given "auto" directly resolves it by the rows it is fitted on.
    train, valid = make(2_000, 1), make(1_000, 2)
    descriptors = ActionDescriptors.from_catalog(CATALOG, FEATURES)
    est = LEARNERS["s"](BoosterParams(num_leaves="auto", max_trees=30), 10, (), 0, 2, 2, descriptors)
    est.fit(train.X, train.action, train.y, propensity=train.propensity, action_ids=CATALOG.ids, control="none",
            eval_set=valid)  # fmt: skip
    trees = [t for b in est.head_.boosters.values() for t in b.dump_model()["tree_info"]]
    assert trees and max(t["num_leaves"] for t in trees) <= SMALL_DATA_LEAVES


def test_dr_pseudo_outcome_weights_are_bounded_where_the_log_rarely_acted() -> None:
    """A row logged with propensity 0.006 weighs at most 1 / DR_PROPENSITY_FLOOR, not 1 / 0.006."""
    from nextbest.training.learners import DR_PROPENSITY_FLOOR, DRLearner

    n = 4
    d = FitData(
        X=np.zeros((n, 1)),
        action=np.array([1, 1, 0, 0]),
        y=np.array([1.0, 1.0, 1.0, 1.0]),
        propensity=np.array([0.006, 0.5, 0.006, 0.5]),
    )
    mu = np.zeros((n, 2))  # outcome models predicting 0: the pseudo-outcome is the weighted residual
    pseudo = DRLearner()._pseudo(d, mu, control=0, code=1)
    assert pseudo.tolist() == pytest.approx([1 / DR_PROPENSITY_FLOOR, 2.0, -1 / DR_PROPENSITY_FLOOR, -2.0])


def test_the_training_config_sets_the_dr_learners_propensity_floor() -> None:
    """``dr_propensity_floor`` reaches the DR-learner (0: unbounded weights), and nonsense is refused."""
    from pydantic import ValidationError

    from nextbest.training.config import TrainConfig
    from nextbest.training.learners import DRLearner

    d = FitData(X=np.zeros((2, 1)), action=np.array([1, 0]), y=np.array([1.0, 1.0]), propensity=np.array([0.01, 0.01]))
    mu = np.zeros((2, 2))
    unbounded = DRLearner(propensity_floor=TrainConfig(dr_propensity_floor=0).dr_propensity_floor)
    assert unbounded._pseudo(d, mu, control=0, code=1).tolist() == pytest.approx([100.0, -100.0])
    bounded = DRLearner(propensity_floor=TrainConfig(dr_propensity_floor=0.1).dr_propensity_floor)
    assert bounded._pseudo(d, mu, control=0, code=1).tolist() == pytest.approx([10.0, -10.0])
    for bad in (-0.1, 1.0, float("inf")):
        with pytest.raises(ValidationError):
            TrainConfig(dr_propensity_floor=bad)


def test_cross_fitting_builds_the_dr_learner_with_the_configured_floor() -> None:
    from nextbest.training.config import BoosterParams, TrainConfig
    from nextbest.training.crossfit import CandidateSpec, CrossFitter

    fitter = CrossFitter(
        catalog=None,  # type: ignore[arg-type]  # not read when building a learner
        cfg=TrainConfig(dr_propensity_floor=0.2),
        descriptors=None,  # type: ignore[arg-type]
        categorical=(),
        data=FitData(np.zeros((1, 1)), np.zeros(1, dtype=int), np.zeros(1), np.ones(1)),
        revenue=np.zeros(1),
        folds=np.zeros(1, dtype=int),
        say=print,
    )
    learner = fitter._learner(CandidateSpec("dr", "revenue", 0, BoosterParams()), None)
    assert learner.propensity_floor == 0.2
