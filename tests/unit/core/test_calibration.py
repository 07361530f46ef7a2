from __future__ import annotations

import numpy as np
import pytest

from nextbest.core.calibration import (
    CalibrationTable,
    brier_score,
    calibration_table,
    expected_calibration_error,
    log_loss,
    roc_auc,
)


def brute_force_auc(p: np.ndarray, y: np.ndarray) -> float:
    pos, neg = p[y == 1], p[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_pairwise_count_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.round(rng.random(600), 1)  # eleven distinct values: many ties, also across classes
    y = (rng.random(600) < p).astype(int)
    assert roc_auc(p, y) == pytest.approx(brute_force_auc(p, y), abs=1e-12)


def test_auc_extremes() -> None:
    y = np.array([0, 0, 1, 1])
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 0.0
    assert roc_auc(np.full(4, 0.3), y) == 0.5
    assert roc_auc(np.array([0.1, 0.5, 0.5, 0.9]), y) == pytest.approx(0.875)  # one tied pair of four
    with pytest.raises(ValueError, match="both"):
        roc_auc(np.array([0.1, 0.2]), np.array([1, 1]))


def test_calibrated_predictions_have_small_ece_and_miscalibrated_large() -> None:
    rng = np.random.default_rng(10)
    p = rng.beta(1.0, 6.0, 50_000)  # crowded near 0, like conversion rates
    y = (rng.random(p.size) < p).astype(int)
    good = calibration_table(p, y)
    assert len(good.count) == 10
    assert good.count.min() >= 4_990 and good.count.max() <= 5_010  # quantile bins hold equal numbers
    assert np.all(np.diff(good.mean_predicted) > 0)
    assert expected_calibration_error(good) < 0.01
    np.testing.assert_allclose(good.observed_rate, good.mean_predicted, atol=0.02)
    overconfident = np.clip(2.0 * p, 0.0, 1.0)
    assert expected_calibration_error(calibration_table(overconfident, y)) > 0.1
    # AUC only sees the ranking, so it cannot tell the two apart
    assert roc_auc(overconfident, y) == pytest.approx(roc_auc(p, y), abs=0.002)


def test_uniform_bins_drop_empty_bins_and_keep_p_equal_to_one() -> None:
    p = np.array([0.05, 0.05, 0.95, 1.0])
    y = np.array([0, 1, 1, 1])
    table = calibration_table(p, y, n_bins=10, strategy="uniform")
    assert table.count.tolist() == [2, 2]
    np.testing.assert_allclose(table.mean_predicted, [0.05, 0.975])
    np.testing.assert_allclose(table.observed_rate, [0.5, 1.0])
    assert expected_calibration_error(table) == pytest.approx((2 * 0.45 + 2 * 0.025) / 4)


def test_quantile_bins_collapse_when_predictions_repeat() -> None:
    p = np.r_[np.full(90, 0.1), np.linspace(0.5, 0.9, 10)]
    y = np.r_[np.zeros(81), np.ones(9), np.ones(10)]
    table = calibration_table(p, y, n_bins=10)
    assert int(table.count.sum()) == 100
    assert table.count[0] == 90  # the repeated value is one bin, not nine identical ones
    assert table.observed_rate[0] == pytest.approx(0.1)


def test_ece_is_the_count_weighted_gap() -> None:
    table = CalibrationTable(np.array([0.1, 0.5]), np.array([0.2, 0.5]), np.array([3, 1]))
    assert expected_calibration_error(table) == pytest.approx(0.075)


def test_log_loss_and_brier_by_hand() -> None:
    p, y = np.array([0.8, 0.3, 0.5]), np.array([1, 0, 1])
    assert log_loss(p, y) == pytest.approx(-(np.log(0.8) + np.log(0.7) + np.log(0.5)) / 3, rel=1e-12)
    assert brier_score(p, y) == pytest.approx((0.04 + 0.09 + 0.25) / 3, rel=1e-12)
    # a confident mistake is expensive but finite
    assert log_loss(np.array([0.0]), np.array([1]), eps=1e-6) == pytest.approx(-np.log(1e-6), rel=1e-9)
    assert log_loss(np.array([1.0, 0.0]), np.array([True, False])) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("p", "y", "match"),
    [
        (np.array([0.5, 1.5]), np.array([0, 1]), "p must"),
        (np.array([0.5, 0.5]), np.array([0, 2]), "y must"),
        (np.array([0.5, 0.5]), np.array([0, 1, 1]), "y must"),
        (np.array([]), np.array([]), "p must"),
    ],
)
def test_invalid_inputs(p: np.ndarray, y: np.ndarray, match: str) -> None:
    for fn in (brier_score, log_loss, roc_auc, calibration_table):
        with pytest.raises(ValueError, match=match):
            fn(p, y)


def test_invalid_options() -> None:
    p, y = np.array([0.2, 0.7]), np.array([0, 1])
    with pytest.raises(ValueError, match="strategy"):
        calibration_table(p, y, strategy="kmeans")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_bins"):
        calibration_table(p, y, n_bins=0)
    with pytest.raises(ValueError, match="eps"):
        log_loss(p, y, eps=0.0)
