"""Blending cross-fitted learners and choosing the decision rule by out-of-fold policy value.

Everything here works on out-of-fold predictions (``training.crossfit``), so no row is judged by a model
that saw it, and on doubly robust (DR) targets built from the logged rewards and propensities:

    gamma[i, a] = q[i, a] + 1[A_i = a] * w_i * (r_i - q[i, a]),      w_i = 1 / pi(A_i | x_i), clipped,

an unbiased estimate of row i's net value under action a whenever either the outcome model ``q`` or the
logged propensities are right. A policy's value is the mean of ``gamma[i, policy(i)]``; two policies are
compared by the paired difference of those terms on the same rows.

* **Blend.** Decisions depend on each action's value *relative to the control*, so the learners' contrasts
  ``q_k[:, a] - q_k[:, control]`` are regressed (non-negative least squares) on the DR contrasts; the weights,
  normalised to sum to one, blend the learners. A learner that adds nothing gets weight 0 and is dropped.
* **Shrinkage.** The blend is then shrunk toward its own average value of each action (the same for every
  customer), by a second regression of the DR contrasts on the two: the weight of the average is near 0
  where effects really differ between customers, and large where the differences the learners see are
  mostly their own noise (a constant effect, a weak e-mail test, a small campaign), so a treatment that pays
  for everyone is not withheld from the customers whose noisy estimate happened to fall below zero. Shrinking
  toward the learners' own average, not a separate estimate of it, leaves the average effect where the
  learners put it: only differences between customers are shrunk, never the decision threshold moved.
* **Decision margin.** Acting on an estimated gain near zero is a coin flip that costs the action's price
  when it lands wrong. The margin is chosen in units of the data's own value scale (the standard deviation
  of the logged net reward), so one default works for a visit worth 1 and an order worth EUR 60: margin 0
  unless a larger one is better beyond noise (the lower end of its paired 95% interval above zero). On the
  external benchmark's scenarios the out-of-fold values of margins between 0 and 0.05 differed by less than
  their noise, and preferring larger ones within noise withheld a treatment that paid for everyone (a weak
  e-mail effect), so the burden of proof is on the margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls

from nextbest.core import ope
from nextbest.core.arbitration import choose

Array = np.ndarray
MAX_WEIGHT = 50.0  # inverse-propensity weights are clipped here (logged probabilities below 2%)
MIN_BLEND_WEIGHT = 0.05  # learners below this share of the blend are dropped (and the rest renormalised)
MARGIN_GRID = (0.0, 0.005, 0.01, 0.02, 0.05)  # in units of the standard deviation of the logged net reward


def dr_targets(q: Array, action: Array, reward: Array, propensity: Array, max_weight: float = MAX_WEIGHT) -> Array:
    """(n, A) doubly robust estimates of each row's net value under each action."""
    rows = np.arange(reward.size)
    w = np.minimum(1.0 / propensity, max_weight)
    gamma = np.array(q, dtype=np.float64, copy=True)
    gamma[rows, action] += w * (reward - q[rows, action])
    return gamma


def contrasts(q: Array, control: int) -> Array:
    others = [a for a in range(q.shape[1]) if a != control]
    out: Array = (q[:, others] - q[:, [control]]).ravel()
    return out


def contrast_loss(q: Array, gamma: Array, control: int) -> float:
    """Mean squared error of a learner's contrasts against the DR contrasts: up to a constant (the DR
    targets' own noise) the error of its estimated effects, which is what decisions depend on."""
    return float(np.mean((contrasts(gamma, control) - contrasts(q, control)) ** 2))


def blend_weights(oofs: list[Array], gamma: Array, control: int) -> Array:
    """Convex weights of the learners whose out-of-fold contrasts best explain the DR contrasts."""
    if len(oofs) == 1:
        return np.ones(1)
    target = contrasts(gamma, control)
    design = np.column_stack([contrasts(q, control) for q in oofs])
    weights, _ = nnls(design, target)
    if not np.isfinite(weights).all() or weights.sum() <= 0:
        return np.full(len(oofs), 1.0 / len(oofs))
    weights = weights / weights.sum()
    weights[weights < MIN_BLEND_WEIGHT] = 0.0
    out: Array = weights / weights.sum()
    return out


def shrinkage(blend: Array, gamma: Array, control: int) -> tuple[float, Array]:
    """(weight of the average, the average): how far to shrink ``blend`` toward its own mean per action."""
    average = blend.mean(axis=0)
    weights = blend_weights([blend, np.tile(average, (blend.shape[0], 1))], gamma, control)
    return float(weights[1]), average


def policy_terms(q: Array, gamma: Array, control: int, margin: float) -> Array:
    """Per-row DR value terms of the greedy policy on ``q`` with ``margin`` (nothing suppressed)."""
    chosen = choose(q - q[:, [control]], np.ones(q.shape, dtype=bool), control, margin)
    terms: Array = gamma[np.arange(q.shape[0]), chosen]
    return terms


@dataclass(frozen=True)
class MarginChoice:
    margin: float  # currency
    relative: float  # in units of ``scale``
    scale: float
    evidence: dict[str, Any]


def choose_margin(
    q: Array, gamma: Array, control: int, scale: float, grid: tuple[float, ...] = MARGIN_GRID
) -> MarginChoice:
    """Margin 0 unless a larger one is better beyond noise (the lower end of its paired 95% interval against
    margin 0 above zero); of those that are, the best."""
    base = policy_terms(q, gamma, control, 0.0)
    best, best_value = 0.0, float(base.mean())
    options = []
    for relative in grid:
        terms = base if relative == 0 else policy_terms(q, gamma, control, relative * scale)
        diff = ope.difference(terms, base, "dr")
        options.append({"relative": relative, "value": float(terms.mean()), "vs_zero": diff.as_dict()})
        if relative > 0 and diff.ci_low > 0 and terms.mean() > best_value:
            best, best_value = relative, float(terms.mean())
    return MarginChoice(best * scale, best, scale, {"options": options, "scale": scale})


def value_scale(reward: Array) -> float:
    """The spread of the logged net reward: the unit in which margins are chosen (never zero)."""
    sd = float(np.std(reward))
    return sd if sd > 0 else 1.0
