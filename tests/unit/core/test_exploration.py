"""Control group and epsilon-greedy exploration: exact, reproducible probabilities."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nextbest.core.exploration import control_group_mask, in_control_group, serve, serve_batch


def test_control_group_share_and_stability() -> None:
    ids = list(range(1, 100_001))
    mask = control_group_mask(ids, 0.02, "salt-a")
    sd = (0.02 * 0.98 / len(ids)) ** 0.5
    assert abs(mask.mean() - 0.02) < 4 * sd  # tolerance: 4 standard deviations (~0.0018)
    assert [in_control_group(i, 0.02, "salt-a") for i in ids[:2000]] == mask[:2000].tolist()
    assert in_control_group(42, 0.5, "s") == in_control_group("42", 0.5, "s")
    assert (control_group_mask(ids, 0.02, "salt-b") != mask).any()  # the salt re-draws the group
    assert not control_group_mask(ids, 0.0, "salt-a").any()
    members = [i for i in ids[:5000] if mask[i - 1]]
    code = (
        "from nextbest.core.exploration import in_control_group as g;"
        "print([i for i in range(1, 5001) if g(i, 0.02, 'salt-a')])"
    )
    for seed in ("0", "12345"):  # another process, another hash seed: the same customers
        env = {"PYTHONHASHSEED": seed, "PATH": ""}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == str(members)


def test_probabilities_are_exact_and_sum_to_one() -> None:
    eligible = np.array([True, False, True, True, True])  # m = 4 eligible, greedy = 2
    rate, m = 0.2, 4
    outcomes: dict[int, float] = {}
    for i in range(4000):
        s = serve(2, eligible, rate, f"d-{i}")
        outcomes[s.index] = s.probability
        assert s.probability == (1 - rate + rate / m if s.index == 2 else rate / m)
        assert s.explored == (s.index != 2) and not s.control
        assert eligible[s.index]
    assert set(outcomes) == {0, 2, 3, 4} and sum(outcomes.values()) == pytest.approx(1.0, abs=1e-12)


def test_empirical_frequencies_match_the_stated_probabilities() -> None:
    n, rate, greedy = 200_000, 0.3, 1
    eligible = np.tile(np.array([True, True, True, False, True]), (n, 1))
    served = serve_batch(np.full(n, greedy), eligible, rate, [f"decision-{i}" for i in range(n)])
    for k in range(5):
        stated = served.probability[served.index == k]
        expected = 0.0 if not eligible[0, k] else (1 - rate + rate / 4 if k == greedy else rate / 4)
        freq = (served.index == k).mean()
        sd = (expected * (1 - expected) / n) ** 0.5
        assert abs(freq - expected) <= 4 * sd + 1e-12, (k, freq, expected)  # 4 standard deviations
        assert (stated == expected).all()
    assert served.explored.mean() == pytest.approx(3 * rate / 4, abs=4 * (0.225 * 0.775 / n) ** 0.5)


def test_decisions_replay_identically_and_batch_equals_single() -> None:
    rng = np.random.default_rng(0)
    eligible = rng.random((300, 6)) < 0.6
    eligible[:, 0] = True
    greedy = np.array([int(rng.choice(np.flatnonzero(row))) for row in eligible])
    control = rng.random(300) < 0.1
    ids = [f"d{i}" for i in range(300)]
    batch = serve_batch(greedy, eligible, 0.25, ids, control=control, control_index=0)
    for i in range(300):
        one = serve(int(greedy[i]), eligible[i], 0.25, ids[i], control=bool(control[i]), control_index=0)
        assert one == serve(int(greedy[i]), eligible[i], 0.25, ids[i], control=bool(control[i]), control_index=0)
        assert (one.index, one.probability, one.explored, one.control) == (
            batch.index[i],
            batch.probability[i],
            batch.explored[i],
            batch.control[i],
        )


def test_control_group_and_degenerate_cases() -> None:
    eligible = np.array([True, True, True])
    ctrl = serve(2, eligible, 0.5, "d", control=True, control_index=0)
    assert (ctrl.index, ctrl.probability, ctrl.control, ctrl.explored, ctrl.greedy) == (0, 1.0, True, False, 2)
    assert serve(2, eligible, 0.0, "d").probability == 1.0
    only_control = np.array([True, False, False])
    assert serve(0, only_control, 0.5, "d").probability == 1.0
    everything = serve_batch(np.array([1, 1]), np.array([[True, True, False]] * 2), 1.0, ["a", "b"])
    assert everything.probability.tolist() == [0.5, 0.5]


# Value-aware exploration -------------------------------------------------------------------------------------
def _weights(net: np.ndarray, eligible: np.ndarray, temperature: float = 0.1, floor: float = 0.05) -> np.ndarray:
    from nextbest.core.exploration import exploration_weights

    return exploration_weights(net, eligible, temperature, floor)


def test_value_weights_favour_near_ties_and_keep_a_floor() -> None:
    net = np.array([[0.0, 1.0, 0.98, -3.0, 0.5]])
    eligible = np.array([[True, True, True, True, False]])
    q = _weights(net, eligible)[0]
    assert q.sum() == pytest.approx(1.0) and q[4] == 0.0  # ineligible: never
    assert q[1] > q[2] > 0.3  # the near-tie shares most of the budget
    floor_each = 0.05 / 4
    assert q[3] == pytest.approx(floor_each, rel=1e-6) and q[0] == pytest.approx(floor_each, rel=1e-2)
    uniformish = _weights(net, eligible, temperature=1e6)[0]  # a huge temperature is uniform over eligible
    assert np.allclose(uniformish[:4], 0.25) and uniformish[4] == 0.0


def test_value_exploration_probabilities_are_exact_and_replayable() -> None:
    n, rate, greedy = 200_000, 0.3, 1
    net = np.tile(np.array([0.0, 1.0, 0.95, -2.0, 0.2]), (n, 1))
    eligible = np.tile(np.array([True, True, True, False, True]), (n, 1))
    q = _weights(net, eligible)
    ids = [f"decision-{i}" for i in range(n)]
    served = serve_batch(np.full(n, greedy), eligible, rate, ids, weights=q)
    expected = rate * q[0] + np.where(np.arange(5) == greedy, 1 - rate, 0.0)
    for k in range(5):
        freq = (served.index == k).mean()
        sd = (expected[k] * (1 - expected[k]) / n) ** 0.5
        assert abs(freq - expected[k]) <= 4 * sd + 1e-12, (k, freq, expected[k])  # 4 standard deviations
        assert np.allclose(served.probability[served.index == k], expected[k], rtol=0, atol=1e-15)
    for i in range(0, 3000):  # one at a time: the same draw, action and probability as the batch
        one = serve(greedy, eligible[i], rate, ids[i], weights=q[i])
        assert (one.index, one.probability, one.explored) == (
            served.index[i],
            served.probability[i],
            served.explored[i],
        )


def test_value_exploration_spends_less_than_uniform_on_bad_actions() -> None:
    """The same budget, served: value-aware exploration costs a fraction of uniform exploration when the
    alternatives are clearly worse, and still tries every eligible action."""
    rng = np.random.default_rng(3)
    n = 50_000
    net = np.column_stack([np.zeros(n), rng.normal(1.0, 1.0, (n, 3))])
    eligible = np.ones((n, 4), dtype=bool)
    greedy = net.argmax(axis=1)
    ids = [f"d{i}" for i in range(n)]
    uniform = serve_batch(greedy, eligible, 0.05, ids)
    value = serve_batch(greedy, eligible, 0.05, ids, weights=_weights(net, eligible, temperature=0.05, floor=0.02))
    rows = np.arange(n)
    loss = {k: float((net[rows, greedy] - net[rows, s.index]).mean()) for k, s in (("u", uniform), ("v", value))}
    assert loss["v"] < 0.15 * loss["u"], loss
    assert set(np.unique(value.index[value.explored])) == {0, 1, 2, 3}
    assert value.probability.min() >= 0.05 * 0.02 / 4 - 1e-15


def test_the_policy_explores_by_value_only_with_a_model_scale() -> None:
    from nextbest.core.exploration import Exploration

    ex = Exploration()
    net, ok = np.array([[0.0, 1.0]]), np.array([[True, True]])
    assert ex.mode == "value" and ex.weights(net, ok, None) is None  # an older model: uniform
    assert ex.weights(net, ok, 2.0) is not None
    assert Exploration(mode="uniform").weights(net, ok, 2.0) is None


def test_a_log_explored_by_value_values_other_policies_without_bias() -> None:
    """Off-policy estimates from a log served with value-aware exploration (its logged probabilities) recover
    the true value of policies that differ from the logging one, including actions it rarely serves."""
    from nextbest.core import ope

    rng = np.random.default_rng(11)
    n, k = 400_000, 4
    truth = np.column_stack([np.zeros(n), rng.normal(0.2, 0.3, (n, k - 1))])  # expected net value per action
    estimate = truth + rng.normal(0, 0.1, truth.shape)  # the model's view, noisy
    eligible = np.ones((n, k), dtype=bool)
    greedy = estimate.argmax(axis=1)
    q = _weights(estimate, eligible, temperature=0.05, floor=0.05)
    served = serve_batch(greedy, eligible, 0.2, [f"d{i}" for i in range(n)], weights=q)
    reward = truth[np.arange(n), served.index] + rng.normal(0, 0.5, n)
    for name, target in {
        "uniform": ope.uniform_policy(n, k),
        "always the worst estimate": ope.deterministic_policy(estimate.argmin(axis=1), k),
        "always action 2": ope.deterministic_policy(np.full(n, 2), k),
    }.items():
        est = ope.snips(reward, served.index, served.probability, target)
        true_value = float((target * truth).sum(axis=1).mean())
        assert est.ci_low <= true_value <= est.ci_high, (name, est.as_dict(), true_value)
        assert est.ci_high - est.ci_low < 0.1  # and informative: the rarely served actions are not a blind spot
