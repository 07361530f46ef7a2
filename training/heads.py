"""The parts of a policy model besides the uplift learner: the order-value head and probability calibration."""

from __future__ import annotations

import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.model.policy_model import ValueHead
from nextbest.training.config import BoosterParams
from nextbest.training.learners import fit_booster

Array = np.ndarray
MIN_CONVERTERS = 200


def fit_value_head(
    catalog: ActionCatalog,
    train: tuple[Array, Array, Array, Array],
    valid: tuple[Array, Array, Array, Array],
    params: BoosterParams,
    categorical: list[int],
    early_stopping_rounds: int,
    seed: int,
    threads: int,
) -> ValueHead:
    """Order value of a conversion from features and the action's discount, trained on converters only.

    ``train``/``valid`` are (X, action index in catalog order, converted, revenue). With too few converters
    it falls back to the mean order value per action (catalog value when an action never converted)."""
    discounts = {a: float(catalog.by_id[a].discount) for a in catalog.ids}
    X, act, conv, rev = train
    fallback = {}
    for i, a in enumerate(catalog.ids):
        sel = (act == i) & (conv == 1)
        fallback[a] = float(rev[sel].mean()) if sel.sum() >= 5 else catalog.by_id[a].value * (1 - discounts[a])
    Xv, actv, convv, revv = valid
    if conv.sum() < MIN_CONVERTERS or convv.sum() < 20:
        return ValueHead(None, discounts, fallback)

    def design(X_: Array, act_: Array) -> Array:
        return np.hstack([X_, catalog.discounts[act_][:, None]])

    booster = fit_booster(
        params,
        "regression",
        (design(X[conv == 1], act[conv == 1]), rev[conv == 1], None),
        (design(Xv[convv == 1], actv[convv == 1]), revv[convv == 1], None),
        categorical,
        early_stopping_rounds,
        seed,
        threads,
    )
    return ValueHead(booster, discounts, fallback)


def platt_calibration(p: Array, y: Array) -> tuple[float, float]:
    """Platt scaling on the logit (two parameters, so uplift differences are barely distorted)."""
    from sklearn.linear_model import LogisticRegression

    q = np.clip(p, 1e-4, 1 - 1e-4)
    logit = np.log(q / (1 - q))[:, None]
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])
