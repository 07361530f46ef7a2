"""The value side of a rule what-if: how much a proposed ruleset would earn per decision compared to the live one.

With logged outcomes (the decision log), each policy's greedy choices are valued off-policy from the probability
the served action had when it was logged (:mod:`nextbest.core.ope`): IPS, SNIPS, and DR with the model's value
of every candidate (expected revenue minus cost, as logged) as the outcome model. The change is the *paired*
difference of per-row terms on the same decisions, so everything both policies share cancels; rows where the
two choose the same action contribute exactly zero. A rule change that only affects decisions the logging
policy rarely explored will have a wide interval: that is the honest answer, not a defect.

Without outcomes (customers sampled from the online store), only the model's own view is available: the
change in expected net value (``model``), with a bootstrap interval over customers. It is labelled
``basis="model"`` everywhere it is shown, because it inherits every error of the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from nextbest.core import ope
from nextbest.core.ope import Estimate


class _Outcome(Protocol):
    @property
    def action(self) -> str | None: ...

    @property
    def probability(self) -> float | None: ...

    @property
    def reward(self) -> float | None: ...


def bootstrap_mean(values: np.ndarray, method: str, level: float = 0.95, draws: int = 1000, seed: int = 0) -> Estimate:
    """Mean with a percentile bootstrap interval over rows (resampling customers)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError("values must be a non-empty 1-d array")
    rng = np.random.default_rng(seed)
    means = np.array([v[rng.integers(0, v.size, v.size)].mean() for _ in range(max(draws, 1))])
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    se = float(means.std(ddof=1)) if draws > 1 else float("inf")
    return Estimate(method, float(v.mean()), se, float(low), float(high), int(v.size), level)


def _nan(method: str, n: int, level: float) -> Estimate:
    nan = float("nan")
    return Estimate(method, nan, nan, nan, nan, n, level)


def _estimate(terms: np.ndarray, method: str, level: float) -> Estimate:
    return _nan(method, terms.size, level) if np.isnan(terms).any() else ope.from_terms(terms, method, level)


def value_change(
    rows: Sequence[_Outcome],
    index: Mapping[str, int],
    live_greedy: np.ndarray,
    proposed_greedy: np.ndarray,
    q_hat: np.ndarray,
    *,
    level: float = 0.95,
    bootstrap: int = 1000,
    seed: int = 0,
) -> tuple[str, dict[str, Estimate], dict[str, Estimate], dict[str, Estimate]]:
    """(basis, change, live value, proposed value), per method, per decision.

    ``index`` maps action ids to the columns of ``q_hat`` ((n, A): the model's value of every action per row);
    the greedy arrays hold column indices. ``model`` (always present) is the mean of ``q_hat`` at each
    policy's choice, with a bootstrap interval; ``ips``, ``snips`` and ``dr`` are added when every row has its
    served action, logged probability and reward."""
    n, n_actions = q_hat.shape
    rows_ix = np.arange(n)
    q_live, q_prop = q_hat[rows_ix, live_greedy], q_hat[rows_ix, proposed_greedy]
    change = {"model": bootstrap_mean(q_prop - q_live, "model", level, bootstrap, seed)}
    live = {"model": bootstrap_mean(q_live, "model", level, bootstrap, seed)}
    proposed = {"model": bootstrap_mean(q_prop, "model", level, bootstrap, seed)}
    if not all(r.action is not None and r.probability is not None and r.reward is not None for r in rows):
        return "model", change, live, proposed
    logged = np.array([index[r.action] for r in rows if r.action is not None], dtype=np.int64)
    prob = np.array([r.probability for r in rows], dtype=np.float64)
    reward = np.array([r.reward for r in rows], dtype=np.float64)
    targets = {
        "live": ope.deterministic_policy(live_greedy, n_actions),
        "proposed": ope.deterministic_policy(proposed_greedy, n_actions),
    }
    terms: dict[str, dict[str, np.ndarray]] = {}
    for name, target in targets.items():
        terms[name] = {
            "ips": ope.ips_terms(reward, logged, prob, target),
            "snips": ope.snips_terms(reward, logged, prob, target),
            "dr": ope.dr_terms(reward, logged, prob, target, q_hat),
        }
    for method in ("ips", "snips", "dr"):
        a, b = terms["live"][method], terms["proposed"][method]
        live[method], proposed[method] = _estimate(a, method, level), _estimate(b, method, level)
        paired = np.isnan(a).any() or np.isnan(b).any()
        change[method] = _nan(method, n, level) if paired else ope.difference(b, a, method, level)
    return "off-policy", _ordered(change), _ordered(live), _ordered(proposed)


def _ordered(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("dr", "snips", "ips", "model") if k in d}
