"""Fitting the overlap guard (``nextbest.model.overlap``): a propensity model of the log's treatment, and the
guard applied to the blend's out-of-fold net values so that selection and evaluation judge what will serve.

The guard is fitted only for a catalog of one action and the control (see ``nextbest.model.overlap`` for why
not with several), when the log's probability of treatment varies between customers and leaves [threshold,
1 - threshold] for some (``thin_log``: a randomised log, or a targeted one that gave both arms a fair chance,
is left alone), and for a blend of two or more learners (one learner cannot disagree with itself).

The propensity model regresses the logit of P(treated | x) on the features. The log says it exactly for every
row (the logged propensity where it treated, one minus it where it did not), so the regression needs no
classifier to rediscover it from the choices alone (one did, but put the customers the log treated at 0.4-4%
at 5-8%, just where the guard must see them); above all the many control rows where the log rarely treated say
how rarely. Trees are chosen by early stopping on one fold and refitted on every row; the fit's mean absolute
error on the logged propensities is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from nextbest.core import ope
from nextbest.core.catalog import ActionCatalog
from nextbest.model.overlap import OverlapGuard, guard
from nextbest.training import stacking
from nextbest.training.boosting import fit_booster
from nextbest.training.config import BoosterParams
from nextbest.training.learners import FitData

Array = np.ndarray
PROPENSITY_PARAMS = BoosterParams(
    num_leaves=15, min_child_samples=20, learning_rate=0.1, max_trees=500, feature_fraction=1.0, bagging_fraction=1.0
)
STOP_ROUNDS = 20
LOGIT_CLIP = 1e-4  # logged propensities of 0 or 1 (never or always) are read as these


@dataclass(frozen=True)
class OverlapFit:
    guard: OverlapGuard
    q_blend: Array  # the blend's out-of-fold net values, guarded
    mask: Array  # (n, K) the guarded customer-actions
    evidence: dict[str, Any]
    taken: bool  # False: the guard lost value out of fold beyond noise, and the model does without it


def thin_log(treated: Array, threshold: float) -> bool:
    """Whether the log's probability of treatment (``treated``, per row) leaves [threshold, 1 - threshold] for
    some customers *and* differs between customers. A log randomised at a fixed rate (a 95/5 trial), or one
    without propensities (read as the arms' shares), has no region it rarely tried to set apart from the rest:
    every customer is alike, and the average effect the guard would use is no better known than anyone's."""
    thin = np.minimum(treated, 1.0 - treated) < threshold
    return bool(thin.any()) and float(np.ptp(treated)) > 1e-9


def treated_probabilities(d: FitData, treatment: int) -> Array:
    """(n,) every row's probability of the treatment, from its logged propensity."""
    out: Array = np.where(d.action == treatment, d.propensity, 1.0 - d.propensity)
    return out


def fit_propensity(
    X: Array, treated: Array, folds: Array, categorical: Sequence[int], seed: int, threads: int
) -> lgb.Booster:
    """The logit of P(treated | x) by LightGBM regression on ``treated`` (each row's probability of treatment,
    0 and 1 read as ``LOGIT_CLIP`` from them): trees by early stopping on fold 0, refitted on every row."""
    p = np.clip(treated, LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    y, held = np.log(p / (1.0 - p)), folds == 0
    probe = fit_booster(
        PROPENSITY_PARAMS, "regression", (X[~held], y[~held], None), (X[held], y[held], None),
        categorical, STOP_ROUNDS, seed, threads,
    )  # fmt: skip
    rounds = max(int(probe.num_trees()), 1)
    return fit_booster(
        PROPENSITY_PARAMS, "regression", (X, y, None), None, categorical, STOP_ROUNDS, seed, threads, rounds
    )


def fit_overlap(
    d: FitData,
    folds: Array,
    catalog: ActionCatalog,
    members: Sequence[Array],
    q_blend: Array,
    average: Array,
    gamma: Array,
    threshold: float,
    categorical: Sequence[int],
    seed: int,
    threads: int,
) -> OverlapFit | None:
    """The guard for a blend whose learners' out-of-fold net values are ``members``; None with more than one
    action besides the control, when the log's overlap is never thin, the blend has one learner, or the
    threshold is 0. Not ``taken`` when the greedy policy on the guarded blend is worse out of fold than on the
    blend itself by more than ``GATE_Z`` standard errors of their paired DR difference (``gamma``:
    ``stacking.dr_targets``). That check is weak where it matters least and most (the guarded customers are the
    ones the log rarely gave the other arm, so their DR terms lean on the outcome models): it stops a guard
    that visibly loses, nothing finer."""
    if len(catalog.ids) != 2 or threshold <= 0 or len(members) < 2:
        return None
    control = catalog.index[catalog.control]
    treatment = 1 - control
    treated = treated_probabilities(d, treatment)
    if not thin_log(treated, threshold):
        return None
    model = OverlapGuard(
        fit_propensity(d.X, treated, folds, categorical, seed, threads),
        catalog.ids[treatment],
        float(threshold),
        {a: float(v) for a, v in zip(catalog.ids, average, strict=True)},
        {a: float(c) for a, c in zip(catalog.ids, catalog.costs, strict=True)},
    )
    propensity = model.propensity(d.X, catalog.ids, threads)
    guarded, mask = guard(q_blend, members, propensity, control, average, threshold)
    base = stacking.policy_terms(q_blend, gamma, control, 0.0)
    change = ope.difference(stacking.policy_terms(guarded, gamma, control, 0.0), base, "dr")
    taken = not change.value < -stacking.GATE_Z * change.se
    evidence: dict[str, Any] = {
        "threshold": float(threshold),
        "trees": model.trees,
        "guarded_share": float(mask[:, treatment].mean()),
        "propensity_mean_abs_error": float(np.mean(np.abs(propensity[:, treatment] - treated))),
        "value_difference": change.as_dict(),
        "taken": taken,
    }
    return OverlapFit(model, guarded, mask, evidence, taken)
