"""Qini curves on synthetic experiments whose uplift is known.

With ``x ~ U(-1, 1)`` and uplift ``tau(x) = 0.1 + 0.2 x``, treating the top fraction ``f`` by true uplift gains
``0.3 f - 0.2 f^2`` per customer: ATE 0.1, AUUC 1/12 and Qini coefficient 1/30 (reversed ranking: -1/30).
"""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.core.uplift_metrics import QiniCurve, auuc, per_action_qini, qini_coefficient, qini_curve

N = 40_000
TRUE_QINI, TRUE_AUUC, ATE = 1 / 30, 1 / 12, 0.1


def experiment(seed: int, confounded: bool = False) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, N)
    p_treat = 0.2 + 0.3 * (x + 1.0) if confounded else np.full(N, 0.5)
    treated = rng.random(N) < p_treat
    tau = 0.1 + 0.2 * x
    outcome = (rng.random(N) < 0.3 + 0.1 * x + tau * treated).astype(np.float64)
    weight = np.where(treated, 1.0 / p_treat, 1.0 / (1.0 - p_treat))
    return x, tau, treated, outcome, weight


def test_perfect_random_and_reversed_scores() -> None:
    _, tau, treated, y, _ = experiment(1)
    perfect = qini_curve(tau, treated, y)
    reversed_ = qini_curve(-tau, treated, y)
    random = qini_curve(np.random.default_rng(2).random(N), treated, y)
    # Monte Carlo sd of these areas is about 0.002 at this n
    assert qini_coefficient(perfect) == pytest.approx(TRUE_QINI, abs=0.006)
    assert qini_coefficient(reversed_) == pytest.approx(-TRUE_QINI, abs=0.006)
    assert abs(qini_coefficient(random)) < 0.006
    assert auuc(perfect) == pytest.approx(TRUE_AUUC, abs=0.01)
    assert auuc(perfect) > auuc(random) > auuc(reversed_)
    for curve in (perfect, reversed_, random):  # every ranking ends at the same place: the whole population
        assert curve.gain[0] == 0.0
        assert curve.gain[-1] == pytest.approx(ATE, abs=0.015)
    # the curve itself follows 0.3 f - 0.2 f^2, peaking above the ATE before the harmed customers come in
    f = perfect.fraction
    assert np.abs(perfect.gain - (0.3 * f - 0.2 * f**2)).max() < 0.015
    assert perfect.gain.max() > ATE + 0.005


def test_hand_computed_curve_with_empty_control_prefix() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    treated = np.array([True, True, False, True, False, False])
    outcome = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    curve = qini_curve(score, treated, outcome, n_points=7)
    # k=1,2 have no control yet -> 0; then (Y_t - Y_c N_t / N_c) / N_t(all) with N_t(all) = 3
    expected = [0.0, 0.0, 0.0, 1 / 3, 2 / 3, 1 / 6, 1 / 3]
    np.testing.assert_allclose(curve.gain, expected, atol=1e-12)
    np.testing.assert_allclose(curve.fraction, np.arange(7) / 6, atol=1e-12)
    assert auuc(curve) == pytest.approx(2 / 9, abs=1e-12)
    assert qini_coefficient(curve) == pytest.approx(1 / 18, abs=1e-12)
    # row order is irrelevant when scores are distinct
    perm = np.random.default_rng(0).permutation(6)
    np.testing.assert_array_equal(qini_curve(score[perm], treated[perm], outcome[perm], n_points=7).gain, curve.gain)


def test_ties_are_one_block_whatever_the_row_order() -> None:
    score = np.array([1.0, 1.0, 0.0, 0.0])
    outcome = np.array([1.0, 0.0, 0.0, 0.0])
    a = qini_curve(score, np.array([True, False, True, False]), outcome, n_points=5)
    b = qini_curve(score[[1, 0, 3, 2]], np.array([False, True, False, True]), outcome[[1, 0, 3, 2]], n_points=5)
    np.testing.assert_array_equal(a.gain, b.gain)
    # block ends at fraction 0.5 (gain 1/2) and 1 (gain 1/2); inside the block the curve is interpolated
    np.testing.assert_allclose(a.gain, [0.0, 0.25, 0.5, 0.5, 0.5], atol=1e-12)
    _, _, treated, y, _ = experiment(3)
    constant = qini_curve(np.zeros(N), treated, y)  # no ranking at all = exactly random targeting
    assert qini_coefficient(constant) == pytest.approx(0.0, abs=1e-12)


def test_a_weight_of_two_is_a_duplicated_row() -> None:
    rng = np.random.default_rng(4)
    score, treated, outcome = rng.random(50), rng.random(50) < 0.5, (rng.random(50) < 0.4).astype(float)
    weight = np.ones(50)
    weight[[3, 17, 31]] = 2.0
    dup = np.r_[np.arange(50), [3, 17, 31]]
    weighted = qini_curve(score, treated, outcome, weight=weight, n_points=11)
    duplicated = qini_curve(score[dup], treated[dup], outcome[dup], n_points=11)
    np.testing.assert_allclose(weighted.gain, duplicated.gain, atol=1e-12)


def test_inverse_propensity_weights_remove_confounding() -> None:
    # treatment is more likely for high x, and high-x customers buy more anyway
    _, tau, treated, y, weight = experiment(5, confounded=True)
    plain, weighted = qini_curve(tau, treated, y), qini_curve(tau, treated, y, weight=weight)
    f = weighted.fraction
    truth = 0.3 * f - 0.2 * f**2
    assert plain.gain[-1] - ATE > 0.05  # unweighted, the control looks worse than it is
    assert weighted.gain[-1] == pytest.approx(ATE, abs=0.015)
    assert np.abs(plain.gain - truth).max() > 0.05
    assert np.abs(weighted.gain - truth).max() < 0.015
    assert qini_coefficient(weighted) == pytest.approx(TRUE_QINI, abs=0.006)


def test_per_action_qini_matches_the_arm_against_control() -> None:
    rng = np.random.default_rng(6)
    n = 3_000
    uplift = rng.normal(size=(n, 4))
    logged = rng.choice([0, 1, 3], size=n)  # action 2 is never logged
    outcome = (rng.random(n) < 0.3).astype(float)
    weight = rng.uniform(1.0, 3.0, n)
    curves = per_action_qini(uplift, logged, outcome, 0, ("none", "a", "b", "c"), weight=weight, n_points=21)
    assert set(curves) == {"a", "c"}
    rows = (logged == 3) | (logged == 0)
    direct = qini_curve(uplift[rows, 3], logged[rows] == 3, outcome[rows], weight=weight[rows], n_points=21)
    assert isinstance(curves["c"], QiniCurve)
    np.testing.assert_array_equal(curves["c"].gain, direct.gain)
    with pytest.raises(ValueError, match="control"):
        per_action_qini(uplift, np.where(logged == 0, 1, logged), outcome, 0, ("none", "a", "b", "c"))


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((np.zeros(3), np.array([True, False]), np.zeros(3)), "treated"),
        ((np.zeros(3), np.array([True, True, True]), np.zeros(3)), "control"),
        ((np.zeros(3), np.array([0, 2, 1]), np.zeros(3)), "treated"),
        ((np.array([0.0, np.nan, 1.0]), np.array([True, False, True]), np.zeros(3)), "score"),
        ((np.zeros(3), np.array([True, False, True]), np.zeros(2)), "outcome"),
    ],
)
def test_invalid_inputs_are_rejected(args: tuple[np.ndarray, ...], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        qini_curve(*args)
    with pytest.raises(ValueError, match="weight"):
        qini_curve(np.zeros(2), np.array([True, False]), np.zeros(2), weight=np.array([1.0, 0.0]))
