"""The parts of a policy model besides the uplift learners: the order-value head and probability calibration."""

from __future__ import annotations

import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.model.heads import ValueHead
from nextbest.training.config import BoosterParams
from nextbest.training.learners import fit_booster

Array = np.ndarray
MIN_CONVERTERS = 200  # converters a value booster needs at all
MIN_ACTION_CONVERTERS = 30  # converters an action needs to be priced as itself (else by its discount only)
Rows = tuple[Array, Array, Array, Array]  # (X, action index in catalog order, converted, revenue)


def revenue_per_conversion_is_constant(catalog: ActionCatalog, rows: Rows) -> bool:
    """True when every converter of an action brought the same revenue (a visit worth 1, a fixed margin net
    of a per-treatment incentive): then the per-action means are the value head, exactly."""
    _, act, conv, rev = rows
    for i in range(len(catalog.ids)):
        values = rev[(act == i) & (conv == 1)]
        if values.size and np.ptp(values) > 1e-9 * max(1.0, float(np.abs(values).max())):
            return False
    return True


def _fallback(catalog: ActionCatalog, rows: Rows) -> dict[str, float]:
    _, act, conv, rev = rows
    out = {}
    for i, a in enumerate(catalog.ids):
        sel = (act == i) & (conv == 1)
        out[a] = float(rev[sel].mean()) if sel.sum() >= 5 else catalog.by_id[a].value * (1 - catalog.by_id[a].discount)
    return out


def constant_value_head(catalog: ActionCatalog, rows: Rows) -> ValueHead:
    """The mean order value of each action's converters (the catalog's value after discount without any)."""
    return ValueHead(None, {a: float(catalog.by_id[a].discount) for a in catalog.ids}, _fallback(catalog, rows))


def fit_value_head(
    catalog: ActionCatalog,
    train: Rows,
    valid: Rows | None,
    params: BoosterParams,
    categorical: list[int],
    early_stopping_rounds: int,
    seed: int,
    threads: int,
    rounds: int | None = None,
) -> ValueHead:
    """Order value of a conversion from the features, the action and its discount, on converters only.

    Trees by early stopping on ``valid``'s converters, or exactly ``rounds``. Constant revenue per conversion
    per action gives the constants (no booster); with too few converters, the mean order value per action
    (the catalog's value after discount for an action that never converted)."""
    discounts = {a: float(catalog.by_id[a].discount) for a in catalog.ids}
    fallback = _fallback(catalog, train)
    X, act, conv, rev = train
    if revenue_per_conversion_is_constant(catalog, train):
        return ValueHead(None, discounts, fallback)
    enough_valid = valid is None or valid[2].sum() >= 20
    if conv.sum() < MIN_CONVERTERS or not enough_valid:
        return ValueHead(None, discounts, fallback)
    counts = np.bincount(act[conv == 1], minlength=len(catalog.ids))
    codes = {a: float(i) if counts[i] >= MIN_ACTION_CONVERTERS else float("nan") for i, a in enumerate(catalog.ids)}
    code_of = np.array([codes[a] for a in catalog.ids])

    def design(X_: Array, act_: Array) -> Array:
        return np.column_stack([X_, code_of[act_], catalog.discounts[act_]])

    valid_part = None
    if valid is not None and rounds is None:
        Xv, actv, convv, revv = valid
        valid_part = (design(Xv[convv == 1], actv[convv == 1]), revv[convv == 1], None)
    booster = fit_booster(
        params,
        "regression",
        (design(X[conv == 1], act[conv == 1]), rev[conv == 1], None),
        valid_part,
        [*categorical, X.shape[1]],
        early_stopping_rounds,
        seed,
        threads,
        rounds if rounds is not None else (None if valid_part is not None else 200),
    )
    return ValueHead(booster, discounts, fallback, codes)


def platt_calibration(p: Array, y: Array) -> tuple[float, float]:
    """Platt scaling on the logit (two parameters, so uplift differences are barely distorted)."""
    from sklearn.linear_model import LogisticRegression

    if np.unique(y).size < 2:
        return 1.0, 0.0  # one class only: nothing to calibrate against
    q = np.clip(p, 1e-4, 1 - 1e-4)
    logit = np.log(q / (1 - q))[:, None]
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])
