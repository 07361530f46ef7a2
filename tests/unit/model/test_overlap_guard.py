"""The overlap guard: the average effect only where the log barely tried an action and the learners disagree."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np

from nextbest.model.overlap import OverlapGuard, guard

CONTROL = 0
AVERAGE = np.array([1.0, 1.5, 0.7])  # average net value per action: effects +0.5 and -0.3


def _members(effect_a: np.ndarray, effect_b: np.ndarray) -> list[np.ndarray]:
    """Two learners' net values (control at 1.0) with the given effects of action 1; action 2 at -0.1 in both."""
    out = []
    for effect in (effect_a, effect_b):
        n = effect.size
        out.append(np.column_stack([np.ones(n), 1.0 + effect, np.full(n, 0.9)]))
    return out


def test_only_thin_and_disagreeing_customer_actions_get_the_average_effect() -> None:
    members = _members(np.array([0.2, 0.2, -0.1, -0.1]), np.array([0.3, -0.2, 0.4, -0.2]))
    net = (members[0] + members[1]) / 2
    propensity = np.array([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25], [0.96, 0.02, 0.02], [0.96, 0.02, 0.02]])
    out, mask = guard(net, members, propensity, CONTROL, AVERAGE, 0.05)
    # row 0 agrees; row 1 disagrees but overlap is fine; row 2 disagrees in thin overlap; row 3 agrees (thin)
    assert mask[:, 1].tolist() == [False, False, True, False]
    assert not mask[:, 2].any()  # both learners say -0.1 for action 2: kept even where overlap is thin
    assert not mask[:, CONTROL].any()
    assert out[2, 1] - out[2, CONTROL] == 0.5  # the average effect
    np.testing.assert_array_equal(np.delete(out, 2, axis=0), np.delete(net, 2, axis=0))


def test_thin_overlap_on_the_control_side_counts_too() -> None:
    members = _members(np.array([0.2]), np.array([-0.2]))
    out, mask = guard(members[0], members, np.array([[0.03, 0.9, 0.07]]), CONTROL, AVERAGE, 0.05)
    assert mask[0, 1] and out[0, 1] == out[0, CONTROL] + 0.5


def test_one_learner_or_a_zero_threshold_changes_nothing() -> None:
    members = _members(np.array([0.2, -0.4]), np.array([-0.2, 0.4]))
    thin = np.full((2, 3), 0.01)
    out, mask = guard(members[0], members[:1], thin, CONTROL, AVERAGE, 0.05)
    assert not mask.any() and out is members[0]
    out, mask = guard(members[0], members, thin, CONTROL, AVERAGE, 0.0)
    assert not mask.any() and out is members[0]


def _propensity_booster(seed: int = 0) -> lgb.Booster:
    """The logit of a logging policy's probability of the treatment: sigmoid(-2 + 3 x0)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, 3))
    params = {"objective": "regression", "verbosity": -1, "num_leaves": 15, "seed": seed}
    return lgb.train(params, lgb.Dataset(X, -2.0 + 3.0 * X[:, 0]), num_boost_round=100)


def test_the_guard_applies_to_expected_revenue_in_any_action_order_and_survives_saving(tmp_path: Path) -> None:
    model = OverlapGuard(_propensity_booster(), "promo", 0.05, {"none": 1.0, "promo": 1.5}, {"none": 0.0, "promo": 0.2})
    X = np.array([[-1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [2.0, 0.0, 0.0]])  # the log rarely promoted the first
    p = model.propensity(X, ("none", "promo"))
    assert p[0, 1] < 0.05 and 0.05 < p[1, 1] < 0.95 and p[2, 0] < 0.05  # the third: rarely left alone
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    costs = np.array([0.0, 0.2])
    a = np.array([[1.0, 1.4]] * 3) + costs  # expected revenue: promo +0.4 net
    b = np.array([[1.0, 0.8]] * 3) + costs  # promo -0.2 net
    revenue = (a + b) / 2
    out, mask = model.apply(X, ("none", "promo"), "none", revenue, [a, b])
    for row in (0, 2):  # thin on either side, and the learners disagree: the average net effect
        assert out[row, 1] - costs[1] - out[row, 0] == 0.5
    np.testing.assert_array_equal(out[1], revenue[1])
    assert mask is not None and mask.tolist() == [[False, True], [False, False], [False, True]]
    swapped, _ = model.apply(X, ("promo", "none"), "none", revenue[:, ::-1], [a[:, ::-1], b[:, ::-1]])
    np.testing.assert_allclose(swapped, out[:, ::-1])
    only, none = model.apply(X, ("promo",), "none", revenue[:, 1:], [a[:, 1:], b[:, 1:]])
    np.testing.assert_array_equal(only, revenue[:, 1:])  # no control among the actions: no effect to guard
    assert none is None
    loaded = OverlapGuard.load(model.save(tmp_path), tmp_path)
    np.testing.assert_array_equal(loaded.apply(X, ("none", "promo"), "none", revenue, [a, b])[0], out)
