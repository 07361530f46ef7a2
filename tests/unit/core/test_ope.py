"""Off-policy estimators on synthetic logs whose true policy values are known exactly.

Five customer segments (equally likely), three actions, Gaussian rewards around ``MU`` and a logging policy
that is far from uniform and favours the target's action exactly where it pays least, so an unweighted mean
is badly biased.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from nextbest.core import ope

MU = np.array([[1.0, 1.5, 0.5], [0.2, 0.0, 0.8], [2.0, 1.0, 1.2], [0.5, 0.6, 0.4], [1.5, 3.0, 2.0]])
LOGGING = np.array([[0.6, 0.1, 0.3], [0.2, 0.2, 0.6], [0.2, 0.5, 0.3], [0.1, 0.8, 0.1], [0.45, 0.1, 0.45]])
BEST = MU.argmax(axis=1)  # [1, 2, 0, 1, 1]
TRUE_BEST = float(MU[np.arange(5), BEST].mean())  # 1.58
CHAMPION = np.where(np.arange(5) == 3, 0, BEST)  # differs from BEST in segment 3 only
TRUE_GAP = float((MU[3, 1] - MU[3, 0]) / 5)  # 0.02
N, REPS = 2_000, 200


@dataclass
class Log:
    segment: np.ndarray
    action: np.ndarray
    prob: np.ndarray
    reward: np.ndarray


def simulate(rng: np.random.Generator, n: int = N) -> Log:
    g = rng.integers(0, 5, n)
    action = (rng.random(n)[:, None] > np.cumsum(LOGGING[g], axis=1)).sum(axis=1)
    return Log(g, action, LOGGING[g, action], MU[g, action] + rng.normal(0.0, 1.0, n))


def policy(log: Log, per_segment: np.ndarray) -> np.ndarray:
    return ope.deterministic_policy(per_segment[log.segment], 3)


@pytest.fixture(scope="module")
def repeated() -> dict[str, list[ope.Estimate]]:
    """200 independent logs; every estimator of interest on each."""
    rng = np.random.default_rng(20240601)
    out: dict[str, list[ope.Estimate]] = {}
    for _ in range(REPS):
        log = simulate(rng)
        args = (log.reward, log.action, log.prob)
        target, champion = policy(log, BEST), policy(log, CHAMPION)
        mixed = 0.5 * target + 0.5 * ope.uniform_policy(N, 3)
        exact_q, biased_q = MU[log.segment], MU[log.segment] + 0.5
        ests = {
            "ips": ope.ips(*args, target),
            "snips": ope.snips(*args, target),
            "dr_exact": ope.dr(*args, target, exact_q),
            "dr_biased": ope.dr(*args, target, biased_q),
            "snips_mixed": ope.snips(*args, mixed),
            "dm_biased": ope.from_terms((target * biased_q).sum(axis=1), "dm"),
            "dr_wrong_prob": ope.dr(log.reward, log.action, np.full(N, 1 / 3), target, exact_q),
            "ips_wrong_prob": ope.ips(log.reward, log.action, np.full(N, 1 / 3), target),
            "gap_dr": ope.difference(
                ope.dr_terms(*args, target, biased_q), ope.dr_terms(*args, champion, biased_q), "dr"
            ),
            "gap_snips": ope.difference(ope.snips_terms(*args, target), ope.snips_terms(*args, champion), "snips"),
            "champion_dr": ope.dr(*args, champion, biased_q),
        }
        for k, v in ests.items():
            out.setdefault(k, []).append(v)
    return out


def coverage(ests: list[ope.Estimate], truth: float) -> float:
    return float(np.mean([e.ci_low <= truth <= e.ci_high for e in ests]))


def values(ests: list[ope.Estimate]) -> np.ndarray:
    return np.array([e.value for e in ests])


@pytest.mark.parametrize("method", ["ips", "snips", "dr_exact", "dr_biased"])
def test_95_percent_intervals_cover_the_true_value(repeated: dict[str, list[ope.Estimate]], method: str) -> None:
    cov = coverage(repeated[method], TRUE_BEST)
    # nominal 0.95; binomial sd over 200 repetitions is 0.015, so [0.90, 0.99] is about +-3 sd
    assert 0.90 <= cov <= 0.99, cov


def test_stochastic_target_is_covered_too(repeated: dict[str, list[ope.Estimate]]) -> None:
    truth = float((0.5 * MU[np.arange(5), BEST] + 0.5 * MU.mean(axis=1)).mean())
    assert 0.90 <= coverage(repeated["snips_mixed"], truth) <= 0.99
    assert abs(values(repeated["snips_mixed"]).mean() - truth) < 0.01


def test_dr_with_a_good_model_has_much_lower_variance_than_ips(repeated: dict[str, list[ope.Estimate]]) -> None:
    sd_ips, sd_dr = values(repeated["ips"]).std(), values(repeated["dr_exact"]).std()
    assert sd_dr < 0.6 * sd_ips, (sd_dr, sd_ips)
    # the reported standard errors agree with the spread actually seen across repetitions (within 20%)
    for method in ("ips", "dr_exact"):
        mean_se = np.mean([e.se for e in repeated[method]])
        assert mean_se == pytest.approx(values(repeated[method]).std(), rel=0.2)


def test_dr_is_unbiased_with_a_biased_model(repeated: dict[str, list[ope.Estimate]]) -> None:
    dm, dr = values(repeated["dm_biased"]), values(repeated["dr_biased"])
    assert dm.mean() - TRUE_BEST == pytest.approx(0.5, abs=0.02)  # the model alone is off by its bias
    assert abs(dr.mean() - TRUE_BEST) < 4 * dr.std() / np.sqrt(REPS)  # DR's mean is within 4 MC standard errors


def test_dr_is_unbiased_with_wrong_logging_probabilities_when_the_model_is_right(
    repeated: dict[str, list[ope.Estimate]],
) -> None:
    wrong_ips, wrong_dr = values(repeated["ips_wrong_prob"]), values(repeated["dr_wrong_prob"])
    assert abs(wrong_ips.mean() - TRUE_BEST) > 0.3
    assert abs(wrong_dr.mean() - TRUE_BEST) < 4 * wrong_dr.std() / np.sqrt(REPS)


def test_unweighted_mean_is_biased_under_non_uniform_logging_and_ips_is_not() -> None:
    log = simulate(np.random.default_rng(7), n=200_000)
    target = policy(log, BEST)
    agrees = log.action == BEST[log.segment]
    naive = float(log.reward[agrees].mean())  # "what happened when we did what the target would do"
    assert naive == pytest.approx(1.0056, abs=0.02)  # analytic: logging-weighted, not segment-weighted
    assert TRUE_BEST - naive > 0.5
    for est in (ope.ips(log.reward, log.action, log.prob, target), ope.snips(log.reward, log.action, log.prob, target)):
        assert abs(est.value - TRUE_BEST) < 4 * est.se
        assert est.se < 0.02


def test_paired_difference_covers_the_true_gap_and_is_tighter_than_unpaired(
    repeated: dict[str, list[ope.Estimate]],
) -> None:
    for method in ("gap_dr", "gap_snips"):
        assert 0.90 <= coverage(repeated[method], TRUE_GAP) <= 0.99, method
    gap, a, b = repeated["gap_dr"][0], repeated["dr_biased"][0], repeated["champion_dr"][0]
    assert gap.value == pytest.approx(a.value - b.value, abs=1e-12)
    assert gap.se < 0.5 * np.hypot(a.se, b.se)


def test_snips_terms_average_to_snips_and_snips_is_shift_invariant() -> None:
    log = simulate(np.random.default_rng(3), n=500)
    target = policy(log, BEST)
    w = target[np.arange(500), log.action] / log.prob
    est = ope.snips(log.reward, log.action, log.prob, target)
    assert est.value == pytest.approx(float((w * log.reward).sum() / w.sum()), rel=1e-12)
    shifted = ope.snips(log.reward + 10.0, log.action, log.prob, target)
    assert shifted.value == pytest.approx(est.value + 10.0, rel=1e-12)
    assert shifted.se == pytest.approx(est.se, rel=1e-9)
    assert ope.ips(log.reward + 10.0, log.action, log.prob, target).value != pytest.approx(est.value + 10.0, abs=0.1)


def test_estimate_interval_level_and_dict() -> None:
    terms = np.random.default_rng(0).normal(1.0, 2.0, 400)
    e95, e80 = ope.from_terms(terms, "x"), ope.from_terms(terms, "x", level=0.80)
    assert e95.ci_half_width == pytest.approx(1.959964 * e95.se, rel=1e-6)
    assert e80.ci_half_width == pytest.approx(1.281552 * e80.se, rel=1e-6)
    assert e95.se == pytest.approx(terms.std(ddof=1) / 20.0)
    assert set(e95.as_dict()) >= {"method", "value", "se", "ci_low", "ci_high", "n"}
    assert e95.as_dict()["n"] == 400
    assert ope.from_terms(np.array([3.0]), "x").se == float("inf")
    with pytest.raises(ValueError, match="level"):
        ope.from_terms(terms, "x", level=1.5)


def test_weight_clipping_bounds_every_term() -> None:
    log = simulate(np.random.default_rng(5), n=1_000)
    target = policy(log, BEST)
    args = (log.reward, log.action, log.prob, target)
    assert np.array_equal(ope.ips_terms(*args, max_weight=100.0), ope.ips_terms(*args))  # weights are <= 10
    clipped = ope.ips_terms(*args, max_weight=2.0)
    assert np.all(np.abs(clipped) <= 2.0 * np.abs(log.reward) + 1e-12)
    assert not np.array_equal(clipped, ope.ips_terms(*args))
    with pytest.raises(ValueError, match="max_weight"):
        ope.ips(*args, max_weight=0.0)


def test_snips_without_support_is_nan_not_a_number_pretending() -> None:
    action = np.zeros(10, dtype=np.int64)
    est = ope.snips(np.ones(10), action, np.full(10, 0.5), ope.deterministic_policy(np.ones(10, np.int64), 2))
    assert np.isnan(est.value) and np.isnan(est.ci_low)


def test_policy_helpers() -> None:
    one_hot = ope.deterministic_policy(np.array([2, 0]), 3)
    assert one_hot.tolist() == [[0, 0, 1], [1, 0, 0]]
    mask = np.array([[True, False, True], [True, True, True]])
    assert np.allclose(ope.uniform_policy(2, 3, mask), [[0.5, 0, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=0, atol=1e-12)
    assert ope.uniform_policy(2, 4).sum(axis=1).tolist() == [1.0, 1.0]
    assert ope.uniform_policy(2, 3, np.array([False, True, True]))[1].tolist() == [0, 0.5, 0.5]
    with pytest.raises(ValueError, match="no allowed action"):
        ope.uniform_policy(2, 3, np.array([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="chosen_index"):
        ope.deterministic_policy(np.array([3]), 3)


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"rewards": np.array([1.0, np.nan, 1.0, 1.0])}, "rewards"),
        ({"logged_action": np.array([0, 1, 5, 0])}, "logged_action"),
        ({"logged_action": np.array([0.0, 1.0, 1.0, 0.0])}, "logged_action"),
        ({"logged_prob": np.array([0.5, 0.0, 0.5, 0.5])}, "logged_prob"),
        ({"logged_prob": np.array([0.5, 1.2, 0.5, 0.5])}, "logged_prob"),
        ({"target": np.full((4, 2), 0.3)}, "target"),
        ({"target": np.ones((3, 2)) / 2}, "target"),
        ({"q_hat": np.zeros((4, 3))}, "q_hat"),
    ],
)
def test_invalid_inputs_name_the_argument(change: dict[str, np.ndarray], name: str) -> None:
    kwargs = {
        "rewards": np.ones(4),
        "logged_action": np.array([0, 1, 1, 0]),
        "logged_prob": np.full(4, 0.5),
        "target": np.full((4, 2), 0.5),
        "q_hat": np.zeros((4, 2)),
    }
    kwargs.update(change)
    with pytest.raises(ValueError, match=name):
        ope.dr(**kwargs)
