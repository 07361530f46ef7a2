"""Reference policies for the external quality benchmark, written the way a data scientist would write them
in an afternoon, on the same logged rows nextbest trains on. Each returns the estimated net value of every
action for the held-out customers, (n, A) in catalog order; the policy is the argmax.

* ``s_learner``: one LightGBM regressor (library defaults) on the features plus the action (categorical),
  target the logged net value (revenue minus the action's cost).
* ``t_learner``: one LightGBM regressor per action, trees chosen by early stopping on 20% of that arm.
* ``x_learner``: causalml's ``BaseXRegressor`` (LightGBM base learners) on the net value, with the logging
  policy's exact propensities.
* ``uplift_forest``: causalml's ``UpliftRandomForestClassifier`` (conversions; net value from the value per
  conversion of each arm) or, for a continuous outcome, its ``CausalRandomForestRegressor`` (one per treatment,
  on that treatment's rows and the control's).
* ``propensity_only``: a response model per action fitted on its own rows, ranking the actions by expected
  value without asking what would happen without them (never chooses the control).
* ``best_single_action``: the action with the best self-normalised IPS value on the log, for everyone.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from _scenarios import Scenario  # type: ignore[import-not-found]

THREADS = 2


def _net(sc: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X log, action codes, net value, X holdout)."""
    code = sc.log["action"].map({a: i for i, a in enumerate(sc.actions)}).to_numpy()
    net = sc.log["revenue"].to_numpy(dtype=float) - sc.costs[code]
    return sc.log[sc.features].to_numpy(float), code, net, sc.holdout[sc.features].to_numpy(float)


def s_learner(sc: Scenario, seed: int = 0) -> np.ndarray:
    import lightgbm as lgb

    X, a, r, Xh = _net(sc)
    model = lgb.LGBMRegressor(random_state=seed, n_jobs=THREADS, verbose=-1)
    cols = [*sc.features, "action"]
    frame = pd.DataFrame(np.column_stack([X, a]), columns=cols)
    frame["action"] = pd.Categorical(a, categories=range(len(sc.actions)))
    model.fit(frame, r, categorical_feature=["action"])
    out = np.empty((len(Xh), len(sc.actions)))
    hold = pd.DataFrame(np.column_stack([Xh, np.zeros(len(Xh))]), columns=cols)
    for k in range(len(sc.actions)):
        hold["action"] = pd.Categorical(np.full(len(Xh), k), categories=range(len(sc.actions)))
        out[:, k] = model.predict(hold)
    return out


def t_learner(sc: Scenario, seed: int = 0) -> np.ndarray:
    import lightgbm as lgb

    X, a, r, Xh = _net(sc)
    rng = np.random.default_rng(seed)
    out = np.empty((len(Xh), len(sc.actions)))
    for k in range(len(sc.actions)):
        rows = np.flatnonzero(a == k)
        stop = rng.random(rows.size) < 0.2
        model = lgb.LGBMRegressor(n_estimators=2000, learning_rate=0.05, random_state=seed, n_jobs=THREADS, verbose=-1)
        model.fit(
            X[rows[~stop]],
            r[rows[~stop]],
            eval_set=[(X[rows[stop]], r[rows[stop]])],
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        out[:, k] = model.predict(Xh)
    return out


def _conditional_propensity(policy: np.ndarray, control: int) -> dict[int, np.ndarray]:
    """P(T = t | x, T in {t, control}) for every treatment t: what an X-learner weighs its two arms by."""
    return {
        k: np.clip(policy[:, k] / (policy[:, k] + policy[:, control]), 0.01, 0.99)
        for k in range(policy.shape[1])
        if k != control
    }


def x_learner(sc: Scenario, seed: int = 0) -> np.ndarray:
    import lightgbm as lgb
    from causalml.inference.meta import BaseXRegressor

    X, a, r, Xh = _net(sc)
    control = sc.actions.index(sc.control)
    assert sc.log_policy is not None and sc.holdout_policy is not None
    learner = BaseXRegressor(
        learner=lgb.LGBMRegressor(random_state=seed, n_jobs=THREADS, verbose=-1), control_name=control
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learner.fit(X, a, r, p=_conditional_propensity(sc.log_policy, control))
        tau = learner.predict(Xh, p=_conditional_propensity(sc.holdout_policy, control))
    out = np.zeros((len(Xh), len(sc.actions)))
    for j, group in enumerate(learner.t_groups):
        out[:, int(group)] = tau[:, j]
    return out


def uplift_forest(sc: Scenario, seed: int = 0) -> np.ndarray:
    X, a, r, Xh = _net(sc)
    control = sc.actions.index(sc.control)
    out = np.zeros((len(Xh), len(sc.actions)))
    if sc.outcome == "continuous":
        from causalml.inference.tree import CausalRandomForestRegressor

        for k in range(len(sc.actions)):  # one forest per treatment, on its rows and the control's
            if k == control:
                continue
            rows = (a == k) | (a == control)
            forest = CausalRandomForestRegressor(
                n_estimators=50, control_name=0, min_samples_leaf=100, n_jobs=THREADS, random_state=seed
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                forest.fit(X[rows], (a[rows] == k).astype(int), r[rows])
                out[:, k] = forest.predict(Xh).ravel()
        return out
    from causalml.inference.tree import UpliftRandomForestClassifier

    names = np.array(sc.actions, dtype=object)
    forest = UpliftRandomForestClassifier(
        control_name=sc.control,
        n_estimators=50,
        max_depth=8,
        min_samples_leaf=100,
        max_features=min(10, len(sc.features)),
        random_state=seed,
        n_jobs=THREADS,
    )
    y = sc.log["converted"].to_numpy(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forest.fit(X, names[a], y)
        full = forest.predict(Xh, full_output=True)
    for k, name in enumerate(sc.actions):
        out[:, k] = full[name].to_numpy() * sc.value_per_conversion[name] - sc.costs[k]
    return out


def propensity_only(sc: Scenario, seed: int = 0) -> np.ndarray:
    """A response model per action (its own rows only); the control is never chosen."""
    import lightgbm as lgb

    X, a, r, Xh = _net(sc)
    control = sc.actions.index(sc.control)
    out = np.full((len(Xh), len(sc.actions)), -np.inf)
    for k in range(len(sc.actions)):
        if k == control:
            continue
        rows = a == k
        if sc.outcome == "binary":
            y = sc.log["converted"].to_numpy(int)
            model = lgb.LGBMClassifier(random_state=seed, n_jobs=THREADS, verbose=-1).fit(X[rows], y[rows])
            out[:, k] = model.predict_proba(Xh)[:, 1] * sc.value_per_conversion[sc.actions[k]] - sc.costs[k]
        else:
            model = lgb.LGBMRegressor(random_state=seed, n_jobs=THREADS, verbose=-1).fit(X[rows], r[rows])
            out[:, k] = model.predict(Xh)
    return out


def best_single_action(sc: Scenario, seed: int = 0) -> np.ndarray:
    _, a, r, Xh = _net(sc)
    if "propensity" in sc.log.columns:
        w = 1.0 / sc.log["propensity"].to_numpy(float)
    else:  # a log without propensities: the scenario's logging policy (the logged shares, for IHDP)
        assert sc.log_policy is not None
        w = 1.0 / sc.log_policy[np.arange(len(a)), a]
    values = np.array([np.sum(w[a == k] * r[a == k]) / max(np.sum(w[a == k]), 1e-12) for k in range(len(sc.actions))])
    return np.tile(values, (len(Xh), 1))


REFERENCES = {
    "s_learner": s_learner,
    "t_learner": t_learner,
    "x_learner": x_learner,
    "uplift_forest": uplift_forest,
    "propensity_only": propensity_only,
    "best_single_action": best_single_action,
}
