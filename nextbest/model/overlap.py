"""The overlap guard: no customer-specific effect where the log barely tried the action and the learners
disagree on it.

Where a confounded log almost never took an action (or almost always did), a learner's estimate of its effect
for those customers is extrapolation: the DR-learner's from pseudo-outcomes divided by a floored propensity,
the S- and T-learners' from the customers the log did treat. When the blend's learners then disagree on the
*sign* of the effect, none of them knows it, and acting on the blend is a coin flip that costs the action's
price when it lands wrong (causalml's nie_wager mode 3: a constant effect that pays for everyone, withheld from
the 0.3-0.4% of customers the log rarely treated). There the guard replaces the blend's effect of that action
by its average effect, the one thing the whole log does estimate. It touches nothing where the learners agree
(an effect that really differs there stays), nothing where the log tried both the action and the control with
probability at least ``threshold``, and nothing in a blend of one learner.

It is for a decision between one action and the control (a campaign: treat or not), where the sign of the
effect is the whole decision and the log states the probability of both arms for every customer. With several
actions the log states only the probability of the action it took, the others' must be extrapolated, and the
choice between actions is not the sign of each one's effect; on obp's bandit logged by a sharp policy the guard
replaced half the customers' effects and cost 0.19 of lift capture (docs/decision-quality.md), so training
does not fit it there.

Overlap is read from a propensity model, P(the log treats | x), fitted at training on the logged propensities
themselves (``nextbest.training.overlap``) and carried by the model, so serving knows it for customers never
logged. Everything is vectorised over (customers, actions); :func:`guard` is the rule on plain arrays, shared
by training (on out-of-fold predictions) and serving.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from nextbest.model.heads import booster_predict

Array = np.ndarray


def guard(
    net: Array,
    members: Sequence[Array],
    propensity: Array,
    control: int,
    average: Array,
    threshold: float,
    disagree: Array | None = None,
) -> tuple[Array, Array]:
    """(net values with the guarded effects replaced, the (n, K) mask of guarded customer-actions).

    ``net`` is the blend's (n, K) net value per action, ``members`` its learners' own, ``propensity`` the
    (n, K) probability the log took each action, ``average`` the (K,) average net value per action. An action
    is guarded for a customer when the members' effects (net value minus the control's) do not all have the
    same sign (a member that sees no effect does not back either sign) and the log took the action or the
    control with probability below ``threshold``. Its effect becomes the average effect. ``disagree``: the
    members' :func:`disagreement`, when the caller already has it."""
    mask = np.zeros(net.shape, dtype=bool)
    if len(members) < 2 or threshold <= 0:
        return net, mask
    thin = np.minimum(propensity, propensity[:, control : control + 1]) < threshold
    mask = (disagreement(members, control) if disagree is None else disagree) & thin
    if not mask.any():
        return net, mask
    effect = np.asarray(average, dtype=np.float64) - float(average[control])
    out: Array = np.where(mask, net[:, control : control + 1] + effect[None, :], net)
    return out, mask


def disagreement(members: Sequence[Array], control: int) -> Array:
    """(n, K) whether the members' effects (net value minus the control's) differ in sign (never the control)."""
    low = high = np.sign(members[0] - members[0][:, control : control + 1])
    for m in members[1:]:  # a few learners: running extremes, no stacked copy (this runs on every request)
        sign = np.sign(m - m[:, control : control + 1])
        low, high = np.minimum(low, sign), np.maximum(high, sign)
    out: Array = low != high
    out[:, control] = False
    return out


def treated_probability(booster: lgb.Booster, X: Array, threads: int = 1) -> Array:
    """(n,) the propensity model's P(the log took the treatment | x) (it predicts the logit)."""
    raw = np.asarray(booster_predict(booster, X, threads))
    out: Array = 1.0 / (1.0 + np.exp(-raw))
    return out


@dataclass(frozen=True)
class OverlapGuard:
    """The guard as a model carries it: the propensity booster (the logit of P(the log took ``treatment`` | x)),
    the threshold, and per action the average net value and the cost that turn expected revenue into net value."""

    booster: lgb.Booster
    treatment: str  # the one action besides the control
    threshold: float
    average: Mapping[str, float]  # average net value per action (the blend's, out of fold)
    costs: Mapping[str, float]
    _by_order: dict[tuple[str, ...], tuple[Array, Array]] = field(default_factory=dict, compare=False, repr=False)

    def propensity(self, X: Array, actions: Sequence[str], threads: int = 1) -> Array:
        """(n, len(actions)) P(the log took each action | x): the treatment's from the booster, the control's (the
        model's only other action) one minus it."""
        treated = treated_probability(self.booster, X, threads)
        out: Array = np.column_stack([treated if a == self.treatment else 1.0 - treated for a in actions])
        return out

    def apply(
        self,
        X: Array,
        actions: Sequence[str],
        control: str,
        revenue: Array,
        member_revenue: Sequence[Array],
        threads: int = 1,
    ) -> tuple[Array, Array | None]:
        """The blend's expected ``revenue`` (n, len(actions)) with guarded effects replaced, and the mask of the
        customer-actions it replaced (None where it replaced none); unchanged when the control is not among
        ``actions`` (no effect to guard) or the blend has fewer than two learners."""
        if control not in actions or len(member_revenue) < 2:
            return revenue, None
        costs, average = self._arrays(tuple(actions))
        nets = [m - costs[None, :] for m in member_revenue]
        index = list(actions).index(control)
        disagree = disagreement(nets, index)
        if not disagree.any():  # the usual case: no propensity needed
            return revenue, None
        propensity = self.propensity(X, actions, threads)
        net, mask = guard(revenue - costs[None, :], nets, propensity, index, average, self.threshold, disagree)
        guarded: Array = net + costs[None, :]
        return guarded, (mask if mask.any() else None)

    def _arrays(self, actions: tuple[str, ...]) -> tuple[Array, Array]:
        """(costs, average net values) in the order of ``actions``, built once per order."""
        found = self._by_order.get(actions)
        if found is None:
            costs = np.array([self.costs.get(a, 0.0) for a in actions])
            found = self._by_order[actions] = (costs, np.array([self.average.get(a, 0.0) for a in actions]))
        return found

    @property
    def trees(self) -> int:
        return int(self.booster.num_trees())

    def save(self, directory: Path) -> dict[str, Any]:
        self.booster.save_model(str(directory / "overlap.txt"))
        return {
            "file": "overlap.txt",
            "treatment": self.treatment,
            "threshold": self.threshold,
            "average": dict(self.average),
            "costs": dict(self.costs),
        }

    @classmethod
    def load(cls, data: Mapping[str, Any], directory: Path) -> OverlapGuard:
        return cls(
            lgb.Booster(model_file=str(directory / data["file"])),
            str(data["treatment"]),
            float(data["threshold"]),
            {k: float(v) for k, v in data["average"].items()},
            {k: float(v) for k, v in data["costs"].items()},
        )
