"""Arbitration: turn model scores into expected incremental net value and pick the best eligible action.

For candidate ``a`` with model estimates ``p_a`` (P(convert | x, a)) and ``r_a`` (expected revenue, i.e.
``p_a`` times the order value after any discount):

    net_value_a = ((r_a - r_control) - cost_a) * lever_a          net_value_control = 0

so the control (doing nothing) wins whenever no action adds value: sure things who buy anyway get nothing,
and a discount is worth its lift only after the margin it gives away. Everything is vectorised over
customers (rows) and candidate actions (columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.core.catalog import ActionCatalog

Array = np.ndarray


@dataclass(frozen=True)
class ScoreBreakdown:
    """Per (customer, candidate) arrays of shape (n, K); ``action_ids`` names the K columns."""

    action_ids: tuple[str, ...]
    control_index: int
    propensity: Array  # P(convert | x, a)
    uplift: Array  # propensity - propensity of the control
    value: Array  # expected order value if the customer converts under a
    cost: Array  # fixed cost of sending a
    lever: Array  # business weight
    net_value: Array  # ((r_a - r_control) - cost_a) * lever_a; 0 for the control
    # where the model used the action's average effect, not the customer's own (its overlap guard); None: nowhere
    average_effect: Array | None = None

    def row(self, i: int) -> list[dict[str, float | str]]:
        """One customer's breakdown as plain records (for responses and logs)."""
        return [
            {
                "action": a,
                "propensity": float(self.propensity[i, k]),
                "uplift": float(self.uplift[i, k]),
                "value": float(self.value[i, k]),
                "cost": float(self.cost[i, k]),
                "lever": float(self.lever[i, k]),
                "net_value": float(self.net_value[i, k]),
            }
            for k, a in enumerate(self.action_ids)
        ]


def score_breakdown(
    catalog: ActionCatalog,
    action_ids: tuple[str, ...],
    p_convert: Array,
    expected_revenue: Array,
    levers: Array | None = None,
    average_effect: Array | None = None,
) -> ScoreBreakdown:
    """Expected net value of every candidate; ``p_convert`` and ``expected_revenue`` are (n, K) in
    ``action_ids`` order, which must include the catalog's control. ``levers`` overrides catalog levers
    (e.g. after rule levers were applied), shape (K,) or (n, K); ``average_effect``: the (n, K) mask of the
    model's scores that are an action's average effect rather than the customer's own (carried through)."""
    p = np.atleast_2d(np.asarray(p_convert, dtype=np.float64))
    rev = np.atleast_2d(np.asarray(expected_revenue, dtype=np.float64))
    if p.shape != rev.shape or p.shape[1] != len(action_ids):
        raise ValueError(f"scores must be (n, {len(action_ids)}); got {p.shape} and {rev.shape}")
    idx, control = catalog.columns(tuple(action_ids))
    cost = np.empty_like(p)
    cost[...] = catalog.costs[idx]
    lever = np.empty_like(p)
    lever[...] = catalog.levers[idx] if levers is None else levers
    net = (rev - rev[:, control : control + 1] - cost) * lever
    net[:, control] = 0.0
    value = np.divide(rev, p, out=np.zeros_like(rev), where=p > 1e-12)
    return ScoreBreakdown(
        action_ids=tuple(action_ids),
        control_index=control,
        propensity=p,
        uplift=p - p[:, control : control + 1],
        value=value,
        cost=cost,
        lever=lever,
        net_value=net,
        average_effect=None if average_effect is None else np.atleast_2d(np.asarray(average_effect, dtype=bool)),
    )


#: Net values closer than this (currency) are a tie: an action that a model cannot tell from the control (a
#: tree that never split on it) has a net value of 0 only up to rounding, (x + cost) - x - cost, and a replay
#: that rebuilds revenue as P(convert) x value rounds differently; exact comparisons made the two disagree.
TIE = 1e-9


def choose(net_value: Array, eligible: Array, control_index: int, margin: float = 0.0) -> Array:
    """Index of the best eligible candidate per row; the control when no eligible action is worth more than
    ``margin`` (the decision margin learned with the model: acting on a near-zero estimate is more often
    wrong than right, so the model can demand a minimum expected gain).

    The control is always eligible and wins a tie; ties between actions (within ``TIE``) go to the lower
    column index."""
    net = np.where(eligible, np.asarray(net_value, dtype=np.float64) - margin, -np.inf)
    net[:, control_index] = -np.inf
    best = net.max(axis=1, keepdims=True)
    first: Array = np.argmax(net >= best - TIE, axis=1)
    chosen: Array = np.where(best[:, 0] > TIE, first, control_index)
    return chosen


def rank(net_value: Array, eligible: Array) -> Array:
    """Column order per row: eligible candidates by net value (descending), then ineligible ones."""
    key = np.where(eligible, net_value, -np.inf)
    order: Array = np.argsort(-key, axis=1, kind="stable")
    return order


def propensity_only(
    catalog: ActionCatalog, action_ids: tuple[str, ...], p_convert: Array, eligible: Array | None = None
) -> Array:
    """The industry baseline: the eligible action with the highest P(convert) x catalog value - cost.

    It ignores what would have happened without contact, so it never chooses to do nothing unless no
    other action is eligible. For comparison only, never the default."""
    p = np.atleast_2d(np.asarray(p_convert, dtype=np.float64))
    idx = [catalog.index[a] for a in action_ids]
    score = p * catalog.values[idx] - catalog.costs[idx]
    ok = np.ones(p.shape, bool) if eligible is None else np.asarray(eligible, bool)
    control = action_ids.index(catalog.control)
    ok = ok.copy()
    ok[:, control] = False
    score = np.where(ok, score, -np.inf)
    best = np.argmax(score, axis=1)
    chosen: Array = np.where(ok.any(axis=1), best, control)
    return chosen
