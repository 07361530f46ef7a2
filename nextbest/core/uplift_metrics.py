"""Qini and uplift curves: does the model rank customers by how much an action *changes* their outcome?

Uplift is never observed for one customer, so a ranking is judged on groups: target the top fraction ``f`` of
customers by score and compare the treated and control outcomes inside that group. With ``k`` the top rows,
``Y`` weighted outcome sums and ``N`` weighted counts for the treated (t) and control (c) rows among them,

    gain(k) = (Y_t(k) - Y_c(k) * N_t(k) / N_c(k)) / N_t(all)

is the Qini curve (Radcliffe): the control outcome is rescaled to the treated group's size, so the bracket is
the incremental outcome of treating the top group; dividing by the whole treated group's size makes it the
incremental outcome *per customer of the population*, so ``gain(1)`` is the average treatment effect whatever
the treated share was. Passing inverse-propensity weights (``1 / P(arm | x)``) turns both arms into estimates of
the whole population, which removes the bias of non-random assignment; the fraction axis is then the
population share by weight, too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class QiniCurve:
    """``gain[j]`` is the incremental outcome per customer when the top ``fraction[j]`` are treated."""

    fraction: Array
    gain: Array


def _validate(score: Array, treated: Array, outcome: Array, weight: Array | None) -> tuple[Array, Array, Array, Array]:
    s = np.asarray(score, dtype=np.float64)
    t = np.asarray(treated)
    y = np.asarray(outcome, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"score must be a non-empty 1-d array; got shape {s.shape}")
    n = s.size
    if not np.all(np.isfinite(s)):
        raise ValueError("score must be finite")
    if t.shape != (n,):
        raise ValueError(f"treated must have shape ({n},); got {t.shape}")
    if t.dtype != np.bool_:
        if not np.all((t == 0) | (t == 1)):
            raise ValueError("treated must be boolean or 0/1")
        t = t.astype(bool)
    if y.shape != (n,) or not np.all(np.isfinite(y)):
        raise ValueError(f"outcome must be a finite array of shape ({n},); got {y.shape}")
    if weight is None:
        w = np.ones(n)
    else:
        w = np.asarray(weight, dtype=np.float64)
        if w.shape != (n,) or not np.all(np.isfinite(w) & (w > 0.0)):
            raise ValueError(f"weight must be a positive finite array of shape ({n},)")
    if not t.any() or t.all():
        raise ValueError("treated must contain both treated and control rows")
    return s, t, y, w


def qini_curve(
    score: Array, treated: Array, outcome: Array, weight: Array | None = None, n_points: int = 101
) -> QiniCurve:
    """Qini curve on ``n_points`` evenly spaced fractions in [0, 1] (see the module docstring).

    The caller restricts the rows to one treatment arm and the control. Rows with equal scores cannot be told
    apart by the model, so the curve is only evaluated where the score changes and interpolated linearly across
    a tie block: the result does not depend on row order. Until the first control row the control rate is
    unknown and the gain is taken as 0."""
    if n_points < 2:
        raise ValueError(f"n_points must be at least 2; got {n_points}")
    s, t, y, w = _validate(score, treated, outcome, weight)
    order = np.argsort(-s, kind="stable")
    s, t, y, w = s[order], t[order], y[order], w[order]
    wt = np.where(t, w, 0.0)
    wc = w - wt
    n_t, n_c = np.cumsum(wt), np.cumsum(wc)
    y_t, y_c = np.cumsum(wt * y), np.cumsum(wc * y)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last row of every tie block
    n_t, n_c, y_t, y_c = n_t[ends], n_c[ends], y_t[ends], y_c[ends]
    scaled_control = np.divide(y_c * n_t, n_c, out=np.zeros_like(y_c), where=n_c > 0)
    gain = np.where(n_c > 0, y_t - scaled_control, 0.0) / n_t[-1]
    cum_w = np.cumsum(w)[ends]
    frac = np.r_[0.0, cum_w / cum_w[-1]]
    grid = np.linspace(0.0, 1.0, n_points)
    return QiniCurve(fraction=grid, gain=np.interp(grid, frac, np.r_[0.0, gain]))


def auuc(curve: QiniCurve) -> float:
    """Area under the Qini curve (trapezoid rule) — incremental outcome per customer averaged over all
    targeting depths. It includes the average effect itself, so it rewards a good action as well as a good
    ranking; use ``qini_coefficient`` to judge the ranking alone."""
    return float(np.trapezoid(curve.gain, curve.fraction))


def qini_coefficient(curve: QiniCurve) -> float:
    """Area between the model's curve and random targeting, the straight line from (0, 0) to (1, gain(1)).

    Positive when the model puts the customers who respond most first, about 0 for a random ranking, negative
    for a reversed one; in the same units as ``gain`` (outcome per customer)."""
    random_line = curve.fraction * curve.gain[-1]
    return float(np.trapezoid(curve.gain - random_line, curve.fraction))


def per_action_qini(
    uplift: Array,
    logged_action: Array,
    outcome: Array,
    control_index: int,
    action_ids: Sequence[str],
    weight: Array | None = None,
    n_points: int = 101,
) -> dict[str, QiniCurve]:
    """One Qini curve per non-control action: its logged rows against the control's, scored by that action's
    uplift column. Actions never logged are left out, since no curve can be estimated for them."""
    u = np.asarray(uplift, dtype=np.float64)
    a = np.asarray(logged_action)
    y = np.asarray(outcome, dtype=np.float64)
    if u.ndim != 2 or u.shape[1] != len(action_ids):
        raise ValueError(f"uplift must have shape (n, {len(action_ids)}); got {u.shape}")
    n = u.shape[0]
    if a.shape != (n,) or y.shape != (n,):
        raise ValueError(f"logged_action and outcome must have shape ({n},); got {a.shape} and {y.shape}")
    if not 0 <= control_index < len(action_ids):
        raise ValueError(f"control_index must be in [0, {len(action_ids)}); got {control_index}")
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    if w is not None and w.shape != (n,):
        raise ValueError(f"weight must have shape ({n},); got {w.shape}")
    is_control = a == control_index
    if not is_control.any():
        raise ValueError(f"no row was logged with the control action {action_ids[control_index]!r}")
    curves: dict[str, QiniCurve] = {}
    for k, action in enumerate(action_ids):
        is_action = a == k
        if k == control_index or not is_action.any():
            continue
        rows = is_action | is_control
        curves[action] = qini_curve(
            u[rows, k], is_action[rows], y[rows], None if w is None else w[rows], n_points=n_points
        )
    return curves
