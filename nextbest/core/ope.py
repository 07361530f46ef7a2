"""Off-policy evaluation: what a target policy would have earned, estimated from logged decisions.

Every decision we log records the action taken and the probability the logging policy gave it, so the value
of any other policy can be estimated without deploying it:

* **IPS** reweights each logged reward by ``w_i = target(a_i | x_i) / logged_prob_i``. Unbiased whenever the
  logging policy gave every action the target might choose a positive probability; high variance when the
  weights are large.
* **SNIPS** divides by the mean weight instead of 1. Slightly biased (O(1/n)), but invariant to shifting all
  rewards by a constant and far less noisy when weights are uneven. Its standard error comes from the delta
  method: the per-row influence terms are ``w_i (r_i - V) / mean(w)``.
* **DR** (doubly robust) starts from a model's estimate ``q_hat`` of every action's reward and corrects it
  with the IPS-weighted residual of the logged action: unbiased if *either* the logging probabilities or
  ``q_hat`` are right, and low variance when ``q_hat`` is good.

Each estimator is the mean of per-row terms, so intervals come from the terms' standard error, and the
*paired* difference of two policies' terms on the same rows (``difference``) gives the interval promotion
needs: the challenger's advantage with the row-level noise both policies share cancelled out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

Array = np.ndarray

_ROW_SUM_TOL = 1e-6


def z_value(level: float) -> float:
    """Two-sided normal quantile for a confidence ``level`` (0.95 -> 1.959964)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


@dataclass(frozen=True)
class Estimate:
    """A policy value (or a difference of two) with a normal confidence interval at ``level``."""

    method: str
    value: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    level: float = 0.95

    @property
    def ci_half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2.0

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def from_terms(terms: Array, method: str, level: float = 0.95) -> Estimate:
    """Mean of per-row terms with its normal interval.

    With a single row no spread can be estimated; the interval is then infinite rather than falsely tight, so
    no comparison built on it can pass."""
    t = np.asarray(terms, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"terms must be a non-empty 1-d array; got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("terms must be finite")
    z = z_value(level)
    value = float(t.mean())
    se = float(t.std(ddof=1) / np.sqrt(t.size)) if t.size > 1 else float("inf")
    return Estimate(method, value, se, value - z * se, value + z * se, int(t.size), level)


def _validate(
    rewards: Array, logged_action: Array, logged_prob: Array, target: Array, q_hat: Array | None = None
) -> tuple[Array, Array, Array, Array]:
    r = np.asarray(rewards, dtype=np.float64)
    a = np.asarray(logged_action)
    p = np.asarray(logged_prob, dtype=np.float64)
    pi = np.asarray(target, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"rewards must be a non-empty 1-d array; got shape {r.shape}")
    n = r.size
    if not np.all(np.isfinite(r)):
        raise ValueError("rewards must be finite")
    if a.shape != (n,):
        raise ValueError(f"logged_action must have shape ({n},); got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"logged_action must hold integer column indices; got dtype {a.dtype}")
    if p.shape != (n,):
        raise ValueError(f"logged_prob must have shape ({n},); got {p.shape}")
    if not np.all((p > 0.0) & (p <= 1.0)):
        raise ValueError("logged_prob must be in (0, 1]: an action logged with probability 0 cannot be reweighted")
    if pi.ndim != 2 or pi.shape[0] != n:
        raise ValueError(f"target must have shape ({n}, n_actions); got {pi.shape}")
    if not np.all((pi >= 0.0) & (pi <= 1.0)):
        raise ValueError("target probabilities must be in [0, 1]")
    if not np.allclose(pi.sum(axis=1), 1.0, rtol=0.0, atol=_ROW_SUM_TOL):
        raise ValueError("target rows must sum to 1 (a distribution over actions per row)")
    if np.any((a < 0) | (a >= pi.shape[1])):
        raise ValueError(f"logged_action must be column indices in [0, {pi.shape[1]})")
    if q_hat is not None:
        q = np.asarray(q_hat, dtype=np.float64)
        if q.shape != pi.shape:
            raise ValueError(f"q_hat must have the target's shape {pi.shape}; got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError("q_hat must be finite")
    return r, a.astype(np.intp), p, pi


def importance_weights(
    logged_action: Array, logged_prob: Array, target: Array, max_weight: float | None = None
) -> Array:
    """``target(a_i | x_i) / logged_prob_i``, optionally clipped: clipping trades a known downward bias for
    bounded variance when the logging policy rarely chose what the target wants."""
    rows = np.arange(len(logged_action))
    w: Array = target[rows, logged_action] / logged_prob
    if max_weight is not None:
        if not max_weight > 0.0:
            raise ValueError(f"max_weight must be positive; got {max_weight!r}")
        w = np.minimum(w, max_weight)
    return w


def ips_terms(
    rewards: Array, logged_action: Array, logged_prob: Array, target: Array, max_weight: float | None = None
) -> Array:
    """Per-row IPS contributions ``w_i r_i``; their mean is the IPS estimate."""
    r, a, p, pi = _validate(rewards, logged_action, logged_prob, target)
    terms: Array = importance_weights(a, p, pi, max_weight) * r
    return terms


def snips_terms(
    rewards: Array, logged_action: Array, logged_prob: Array, target: Array, max_weight: float | None = None
) -> Array:
    """Linearised SNIPS contributions ``V + w_i (r_i - V) / mean(w)``.

    Their mean is exactly the SNIPS estimate and their spread its delta-method standard error, so SNIPS
    values can be differenced row by row like the other estimators. All zeros -> NaN: when no logged row
    agrees with the target there is no information about its value."""
    r, a, p, pi = _validate(rewards, logged_action, logged_prob, target)
    w = importance_weights(a, p, pi, max_weight)
    mean_w = float(w.mean())
    if mean_w <= 0.0:
        return np.full(r.shape, np.nan)
    value = float((w * r).sum() / w.sum())
    terms: Array = value + w * (r - value) / mean_w
    return terms


def dr_terms(
    rewards: Array,
    logged_action: Array,
    logged_prob: Array,
    target: Array,
    q_hat: Array,
    max_weight: float | None = None,
) -> Array:
    """Per-row DR contributions: the model's value of the target, ``sum_a target(a) q_hat(a)``, plus the
    weighted residual ``w_i (r_i - q_hat(a_i))`` that removes the model's bias on average."""
    r, a, p, pi = _validate(rewards, logged_action, logged_prob, target, q_hat)
    q = np.asarray(q_hat, dtype=np.float64)
    rows = np.arange(r.size)
    w = importance_weights(a, p, pi, max_weight)
    terms: Array = (pi * q).sum(axis=1) + w * (r - q[rows, a])
    return terms


def ips(
    rewards: Array,
    logged_action: Array,
    logged_prob: Array,
    target: Array,
    max_weight: float | None = None,
    level: float = 0.95,
) -> Estimate:
    return from_terms(ips_terms(rewards, logged_action, logged_prob, target, max_weight), "ips", level)


def snips(
    rewards: Array,
    logged_action: Array,
    logged_prob: Array,
    target: Array,
    max_weight: float | None = None,
    level: float = 0.95,
) -> Estimate:
    """SNIPS with a delta-method interval; NaN value and interval when no logged row supports the target."""
    terms = snips_terms(rewards, logged_action, logged_prob, target, max_weight)
    if np.isnan(terms).any():
        nan = float("nan")
        return Estimate("snips", nan, nan, nan, nan, int(terms.size), level)
    return from_terms(terms, "snips", level)


def dr(
    rewards: Array,
    logged_action: Array,
    logged_prob: Array,
    target: Array,
    q_hat: Array,
    max_weight: float | None = None,
    level: float = 0.95,
) -> Estimate:
    return from_terms(dr_terms(rewards, logged_action, logged_prob, target, q_hat, max_weight), "dr", level)


def difference(terms_a: Array, terms_b: Array, method: str, level: float = 0.95) -> Estimate:
    """V(a) - V(b) from per-row terms of two policies on the *same* rows.

    Pairing matters: both policies share each row's noise (the customer, the logged outcome), so the interval
    of the difference is usually far narrower than one built from the two separate intervals. A challenger
    beats the champion beyond noise when ``ci_low`` exceeds the required margin."""
    a = np.asarray(terms_a, dtype=np.float64)
    b = np.asarray(terms_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"terms_a and terms_b must come from the same rows; got shapes {a.shape} and {b.shape}")
    return from_terms(a - b, method, level)


def deterministic_policy(chosen_index: Array, n_actions: int) -> Array:
    """One-hot (n, n_actions) probabilities of a policy that always plays ``chosen_index[i]`` on row i."""
    chosen = np.asarray(chosen_index)
    if chosen.ndim != 1 or not np.issubdtype(chosen.dtype, np.integer):
        raise ValueError(f"chosen_index must be a 1-d integer array; got shape {chosen.shape}, dtype {chosen.dtype}")
    if n_actions < 1:
        raise ValueError(f"n_actions must be at least 1; got {n_actions}")
    if np.any((chosen < 0) | (chosen >= n_actions)):
        raise ValueError(f"chosen_index must be in [0, {n_actions})")
    out = np.zeros((chosen.size, n_actions), dtype=np.float64)
    out[np.arange(chosen.size), chosen] = 1.0
    return out


def uniform_policy(n: int, n_actions: int, mask: Array | None = None) -> Array:
    """Uniform over all actions, or over each row's allowed actions when ``mask`` ((n, A) or (A,) bool) is
    given: the random-targeting baseline every learned policy should beat."""
    if n < 0 or n_actions < 1:
        raise ValueError(f"need n >= 0 and n_actions >= 1; got n={n}, n_actions={n_actions}")
    if mask is None:
        return np.full((n, n_actions), 1.0 / n_actions)
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(f"mask must be boolean; got dtype {m.dtype}")
    try:
        allowed = np.broadcast_to(m, (n, n_actions)).astype(np.float64)
    except ValueError:
        raise ValueError(f"mask must have shape ({n_actions},) or ({n}, {n_actions}); got {m.shape}") from None
    counts = allowed.sum(axis=1, keepdims=True)
    if np.any(counts == 0):
        raise ValueError("mask leaves some row with no allowed action")
    out: Array = allowed / counts
    return out
