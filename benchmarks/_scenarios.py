"""Decision problems from generators this project did not write, each with the truth for every customer.

Every scenario yields a *log* (one logged decision per customer: features, the action taken, its logging
probability, the outcome) in the file format of ``nextbest train --data``, an action catalog, and held-out
customers with the expected net value of every action (``truth``), so a policy's true value is known:

* ``uplift_cls``: causalml's ``make_uplift_classification``, a control and three treatments, features that
  raise and features that lower each treatment's conversion (harmful effects); a conversion is worth 10 and
  each treatment has its own cost per conversion (an incentive paid out on purchase), so the treatment that
  converts most is not the one that pays most. The generator returns only the assigned arm's outcome; every
  arm's outcome is rebuilt from the labels it composes (``_record_make_classification``), so any logging
  policy can be applied afterwards. String customer ids.
* ``nie_wager_m1`` .. ``m4``: causalml's ``synthetic_data`` modes 1-4 (Nie and Wager's setups A-D: difficult
  nuisance, a randomised trial, easy propensity with a difficult baseline, unrelated arms), a continuous
  outcome (revenue that can be negative), one treatment with a cost of 0.5; the generator's own propensities
  (confounded in modes 1, 3 and 4) are the logging policy.
* ``obp``: obp's ``SyntheticBanditDataset``, six actions with logistic click models, a click worth 1 (a
  small value unit), the control named ``hold`` (not ``no_action``), UUID customer ids.
* ``uplift_logistic``: causalml's ``make_uplift_classification_logistic`` (its logit-shift generator, not
  the one above): a control and three treatments whose effects are nonlinear in their own features, one
  harmful on average; a conversion worth 10, a cost per send.
* ``obp_continuous``: obp's ``SyntheticBanditDataset`` with a continuous reward (above 0 on every row: an
  order value, no conversion to speak of), ten actions, obp's own non-uniform logging policy.

These last two were added after the defaults were set, to see whether they hold on generators they were
never measured on; no setting changed for them. ``PROBES`` (``obp_many``: twenty actions;
``uplift_logistic_rare``: 2% conversion and effects a fifth as large; ``ihdp``: econml's IHDP, 747 real
children, a few hundred logged) are not in the default run.

``*_targeted`` variants keep the generator's outcomes but log a targeted (confounded) policy instead of a
randomised one: assignment depends on features that also drive the outcome, and the logged propensities say
how (0.05-0.7). Each scenario draws the log and the held-out customers from one generator call, so both
come from the same world.

This module holds the causalml generators and the lists; obp's are in ``_obp_scenarios``, the ``Scenario``
and the pieces both share in ``_scenario_base``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from _obp_scenarios import obp_bandit, obp_continuous, obp_many  # type: ignore[import-not-found]
from _scenario_base import (  # type: ignore[import-not-found]
    Scenario,
    _arm_scenario,
    _catalog,
    _draw,
    _split,
    _timestamps,
    targeted_policy,
)

__all__ = ["PROBES", "SCENARIOS", "Scenario", "nie_wager", "obp_bandit", "uplift_classification", "uplift_logistic"]


# --- causalml make_uplift_classification -------------------------------------------------------------------
def _record_make_classification(module: Any) -> tuple[list[tuple[np.ndarray, np.ndarray]], Callable[[], None]]:
    """Wrap the ``make_classification`` the generator calls, to keep each (X, y) it draws, in order."""
    calls: list[tuple[np.ndarray, np.ndarray]] = []
    original = module.make_classification

    def recording(*args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        X, y = original(*args, **kwargs)
        calls.append((X, y))
        return X, y

    module.make_classification = recording

    def restore() -> None:
        module.make_classification = original

    return calls, restore


UPLIFT_TREATMENTS = ("treatment1", "treatment2", "treatment3")
UPLIFT_INCREASE = {"treatment1": 2, "treatment2": 2, "treatment3": 3}
UPLIFT_DECREASE = {"treatment1": 0, "treatment2": 1, "treatment3": 2}
UPLIFT_DELTA_UP = {"treatment1": 0.04, "treatment2": 0.10, "treatment3": 0.18}
UPLIFT_DELTA_DOWN = {"treatment1": 0.0, "treatment2": 0.04, "treatment3": 0.10}
CONVERSION_VALUE = 10.0
CONVERSION_COST = {"control": 0.0, "treatment1": 0.5, "treatment2": 1.0, "treatment3": 2.0}  # paid per conversion
SEND_COST = {"control": 0.0, "treatment1": 0.02, "treatment2": 0.02, "treatment3": 0.05}


def uplift_classification(n_log: int, n_holdout: int, seed: int, targeted: bool = False) -> Scenario:
    import causalml.dataset.classification as cls

    names = ["control", *UPLIFT_TREATMENTS]
    per_group = -(-(n_log + n_holdout) // len(names))
    calls, restore = _record_make_classification(cls)
    try:
        frame, x_names = cls.make_uplift_classification(
            n_samples=per_group,
            treatment_name=names,
            n_classification_features=10,
            n_classification_informative=5,
            n_uplift_increase_dict=UPLIFT_INCREASE,
            n_uplift_decrease_dict=UPLIFT_DECREASE,
            delta_uplift_increase_dict=UPLIFT_DELTA_UP,
            delta_uplift_decrease_dict=UPLIFT_DELTA_DOWN,
            n_uplift_increase_mix_informative_dict={t: 1 for t in UPLIFT_TREATMENTS},
            n_uplift_decrease_mix_informative_dict={t: 1 for t in UPLIFT_TREATMENTS},
            positive_class_proportion=0.3,
            random_seed=seed,
        )
    finally:
        restore()
    # The calls in order: the base classification, then one per treatment that raises, one per treatment that
    # lowers conversion (in treatment order, only where that treatment has such features).
    base = calls[0][1]
    rest = iter(calls[1:])
    up = {t: next(rest)[1] if UPLIFT_INCREASE[t] else np.zeros_like(base) for t in UPLIFT_TREATMENTS}
    down = {t: next(rest)[1] if UPLIFT_DECREASE[t] else np.zeros_like(base) for t in UPLIFT_TREATMENTS}
    outcomes = np.column_stack([base, *(np.clip(base + up[t] - down[t], 0, 1) for t in UPLIFT_TREATMENTS)])
    assigned = frame["treatment_group_key"].map({n: i for i, n in enumerate(names)}).to_numpy()
    if not np.array_equal(outcomes[np.arange(len(frame)), assigned], frame["conversion"].to_numpy()):
        raise RuntimeError("rebuilt potential outcomes do not match causalml's observed outcome")
    net_per_conv = np.array([CONVERSION_VALUE - CONVERSION_COST[n] for n in names])
    send = np.array([SEND_COST[n] for n in names])
    net = outcomes * net_per_conv[None, :] - send[None, :]

    rng = np.random.default_rng(seed)
    n = len(frame)
    if targeted:
        drivers = frame[[x_names[0], x_names[1], *[c for c in x_names if "uplift_increase" in c][:2]]].to_numpy()
        probs = targeted_policy(drivers, len(names), rng)
        action = _draw(probs, rng)
    else:  # the generator's own randomised assignment
        probs = np.full((n, len(names)), 1.0 / len(names))
        action = assigned
    ids = np.array([f"C{int(i):07d}" for i in rng.permutation(n) + 100_000])
    log_rows, hold_rows = _split(n, n_log, rng)
    data = frame[x_names].reset_index(drop=True)
    chosen = action[log_rows]
    converted = outcomes[log_rows, chosen].astype(int)
    return _arm_scenario(
        ("uplift_cls_targeted" if targeted else "uplift_cls",
         "causalml make_uplift_classification, 3 treatments with harmful features, cost per conversion"),
        data, ids, (log_rows, hold_rows), rng, (names, chosen), (converted, converted * net_per_conv[chosen]),
        probs, net, dict(zip(names, net_per_conv.tolist(), strict=True)), SEND_COST, CONVERSION_VALUE,
    )  # fmt: skip


# --- causalml make_uplift_classification_logistic -----------------------------------------------------------
LOGISTIC_ARMS = ("control", "treatment1", "treatment2", "treatment3")
LOGISTIC_SEND_COST = {"control": 0.0, "treatment1": 0.05, "treatment2": 0.1, "treatment3": 0.02}
RARE_VALUE = 50.0


def uplift_logistic(n_log: int, n_holdout: int, seed: int, targeted: bool = False, rare: bool = False) -> Scenario:
    """causalml's logistic uplift generator: each treatment shifts the logit of conversion by nonlinear
    functions (quadratic, cubic, relu, sin, cos) of its own uplift features, on average +0.02, +0.05 and -0.05,
    so the best arm differs between customers and one treatment is harmful for most. The generator states
    every arm's conversion probability for every row, so the truth is exact. ``rare``: 2% convert without a
    treatment (10% otherwise), the average effects are a fifth as large, and a conversion is worth 50."""
    import random

    from causalml.dataset import make_uplift_classification_logistic

    random.seed(seed)  # the generator draws the uplift features' shapes from Python's global state
    per_group = -(-(n_log + n_holdout) // len(LOGISTIC_ARMS))
    deltas = {"treatment1": 0.02, "treatment2": 0.05, "treatment3": -0.05}  # the generator's defaults
    value = RARE_VALUE if rare else CONVERSION_VALUE
    frame, x_names = make_uplift_classification_logistic(
        n_samples=per_group,
        treatment_name=list(LOGISTIC_ARMS),
        positive_class_proportion=0.02 if rare else 0.1,
        delta_uplift_dict={t: d / 5 for t, d in deltas.items()} if rare else deltas,
        random_seed=seed,
    )
    frame = frame.iloc[: n_log + n_holdout].reset_index(drop=True)
    p = np.column_stack([frame[f"{t}_conversion_prob"].to_numpy() for t in LOGISTIC_ARMS])
    send = np.array([LOGISTIC_SEND_COST[t] for t in LOGISTIC_ARMS])
    net = p * value - send[None, :]
    rng = np.random.default_rng(seed)
    n = len(frame)
    if targeted:
        drivers = frame[[x_names[0], x_names[1], *[c for c in x_names if c.endswith("_uplift")][:2]]].to_numpy()
        probs = targeted_policy(drivers, len(LOGISTIC_ARMS), rng)
        action = _draw(probs, rng)
        converted = (rng.random(n) < p[np.arange(n), action]).astype(int)
    else:  # the generator's own randomised assignment and outcome
        probs = np.full((n, len(LOGISTIC_ARMS)), 1.0 / len(LOGISTIC_ARMS))
        action = frame["treatment_group_key"].map({t: i for i, t in enumerate(LOGISTIC_ARMS)}).to_numpy()
        converted = frame["conversion"].to_numpy().astype(int)
    ids = np.array([f"L-{int(i):08d}" for i in rng.permutation(n)])
    log_rows, hold_rows = _split(n, n_log, rng)
    data = frame[x_names].reset_index(drop=True)
    chosen = action[log_rows]
    return _arm_scenario(
        ("uplift_logistic" + ("_targeted" if targeted else "") + ("_rare" if rare else ""),
         "causalml make_uplift_classification_logistic, 3 treatments (one harmful on average)"),
        data, ids, (log_rows, hold_rows), rng, (LOGISTIC_ARMS, chosen),
        (converted[log_rows], converted[log_rows] * value), probs, net,
        dict.fromkeys(LOGISTIC_ARMS, value), LOGISTIC_SEND_COST, value,
    )  # fmt: skip


# --- one treatment against no action, a continuous outcome (nie_wager, ihdp) --------------------------------
def _treatment_frames(
    data: pd.DataFrame,
    ids: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray],
    treated: np.ndarray,
    outcome: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The log (the ``rows[0]`` customers: features, ``treat`` or ``no_action``, the outcome as revenue,
    converted where it is above 0; no propensity) and the held-out customers (``rows[1]``: id and features)."""
    log_rows, hold_rows = rows
    log = pd.DataFrame({"customer_id": ids[log_rows], "event_timestamp": _timestamps(len(log_rows), rng)})
    log = pd.concat([log, data.iloc[log_rows].reset_index(drop=True)], axis=1)
    log["action"] = np.where(treated[log_rows] == 1, "treat", "no_action")
    log["revenue"] = outcome[log_rows]
    log["converted"] = (outcome[log_rows] > 0).astype(int)
    holdout = pd.concat(
        [pd.DataFrame({"customer_id": ids[hold_rows]}), data.iloc[hold_rows].reset_index(drop=True)], axis=1
    )
    return log, holdout


def _treatment_catalog(cost: float) -> dict[str, Any]:
    actions = [
        {"id": "no_action", "channels": ["email"], "category": "none", "value": 0, "cost": 0},
        {"id": "treat", "channels": ["email"], "category": "promo", "value": 1, "cost": cost},
    ]
    return _catalog(actions, "no_action")


# --- causalml synthetic_data (Nie and Wager) --------------------------------------------------------------
TREATMENT_COST = 0.5


def nie_wager(mode: int, n_log: int, n_holdout: int, seed: int) -> Scenario:
    from causalml.dataset import synthetic_data

    np.random.seed(seed)  # the generator draws from numpy's global state
    n = n_log + n_holdout
    y, X, w, tau, b, e = synthetic_data(mode=mode, n=n, p=8, sigma=1.0)
    rng = np.random.default_rng(seed)
    truth = np.column_stack([b - 0.5 * tau, b + 0.5 * tau - TREATMENT_COST])
    log_rows, hold_rows = _split(n, n_log, rng)
    feats = [f"x{j}" for j in range(X.shape[1])]
    log, holdout = _treatment_frames(pd.DataFrame(X, columns=feats), np.arange(n) + 1, (log_rows, hold_rows), w, y, rng)
    log["propensity"] = np.where(w[log_rows] == 1, e[log_rows], 1 - e[log_rows])
    labels = {1: "difficult nuisance", 2: "randomised trial", 3: "easy propensity", 4: "unrelated arms"}
    return Scenario(
        name=f"nie_wager_m{mode}",
        description=f"causalml synthetic_data mode {mode} ({labels[mode]}), continuous outcome, treatment cost",
        log=log,
        holdout=holdout,
        truth=truth[hold_rows],
        catalog=_treatment_catalog(TREATMENT_COST),
        features=feats,
        log_policy=np.column_stack([1 - e, e])[log_rows],
        holdout_policy=np.column_stack([1 - e, e])[hold_rows],
        outcome="continuous",
    )


# --- econml's IHDP (Hill 2011, response surface B) ------------------------------------------------------
IHDP_COST = 4.0  # the treatment's average effect on the treated, by the surface's construction


def ihdp(n_log: int, n_holdout: int, seed: int) -> Scenario:
    """Real covariates of 747 infants (the Infant Health and Development Program, as econml ships them), the
    real (non-random: treated children of non-white mothers removed) assignment, Hill's response surface B:
    an outcome exponential in the covariates without treatment, linear with it, so the effect varies in sign
    and size. A treatment costs 4 (its average effect on the treated), so treating pays for about 60% of the
    children. At most 70% of the children are logged (``n_log`` caps it), the rest are held out; the log has
    no propensity column (the assignment probabilities are not known), as a customer's own log may not."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from econml.data.dgps import ihdp_surface_B

    y, w, X, effect = ihdp_surface_B(random_state=seed)
    rs = np.random.RandomState(seed)  # ihdp_surface_B's own draws, replayed for the noise-free surfaces
    d_x = X.shape[1]
    beta = rs.choice([0, 0.1, 0.2, 0.3, 0.4], size=d_x, replace=True, p=[0.6, 0.1, 0.1, 0.1, 0.1])
    offset = np.concatenate((np.zeros((len(X), 1)), np.ones((len(X), d_x - 1)) * 0.5), axis=1)
    omega = np.mean((X @ beta - np.exp((X + offset) @ beta))[w == 1]) - 4
    mu0, mu1 = np.exp((X + offset) @ beta), X @ beta - omega
    if not np.allclose(mu1 - mu0, effect):  # the replay no longer matches econml's surface (another release)
        raise RuntimeError("ihdp: the response surfaces do not reproduce econml's true effects")
    names = ["bw", "b.head", "preterm", "birth.o", "nnhealth", "momage", "sex", "twin", "b.marr", "mom.lths"]
    names += ["mom.hs", "mom.scoll", "cig", "first", "booze", "drugs", "work.dur", "prenatal"]
    names += [f"site{k}" for k in range(1, 8)]
    assert len(names) == d_x - 1  # econml's columns after its intercept
    data = pd.DataFrame(X[:, 1:], columns=names)  # the intercept column left out
    n = len(X)
    rng = np.random.default_rng(seed)
    log_rows, hold_rows = _split(n, min(n_log, int(0.7 * n)), rng)
    ids = np.array([f"IHDP-{i:04d}" for i in range(n)], dtype=object)
    log, holdout = _treatment_frames(data, ids, (log_rows, hold_rows), w, y, rng)  # no propensity column
    share = w[log_rows].mean()  # what a user without propensities has: the logged shares
    policy = np.column_stack([np.full(n, 1 - share), np.full(n, share)])
    return Scenario(
        name="ihdp",
        description="econml's IHDP, response surface B (real covariates, 747 children), a treatment cost",
        log=log,
        holdout=holdout,
        truth=np.column_stack([mu0, mu1 - IHDP_COST])[hold_rows],
        catalog=_treatment_catalog(IHDP_COST),
        features=names,
        log_policy=policy[log_rows],
        holdout_policy=policy[hold_rows],
        outcome="continuous",
    )


SCENARIOS: dict[str, Callable[[int, int, int], Scenario]] = {
    "uplift_cls": lambda n, h, s: uplift_classification(n, h, s),
    "uplift_cls_targeted": lambda n, h, s: uplift_classification(n, h, s, targeted=True),
    "nie_wager_m1": lambda n, h, s: nie_wager(1, n, h, s),
    "nie_wager_m2": lambda n, h, s: nie_wager(2, n, h, s),
    "nie_wager_m3": lambda n, h, s: nie_wager(3, n, h, s),
    "nie_wager_m4": lambda n, h, s: nie_wager(4, n, h, s),
    "obp": lambda n, h, s: obp_bandit(n, h, s),
    "obp_targeted": lambda n, h, s: obp_bandit(n, h, s, targeted=True),
    "uplift_logistic": lambda n, h, s: uplift_logistic(n, h, s),
    "uplift_logistic_targeted": lambda n, h, s: uplift_logistic(n, h, s, targeted=True),
    "obp_continuous": lambda n, h, s: obp_continuous(n, h, s),
}

# Probes: measured once to see whether the defaults hold where the benchmark does not look (``--scenarios``
# takes them; the default run and the README's table do not include them).
PROBES: dict[str, Callable[[int, int, int], Scenario]] = {
    "obp_many": lambda n, h, s: obp_many(n, h, s),
    "uplift_logistic_rare": lambda n, h, s: uplift_logistic(n, h, s, rare=True),
    "ihdp": lambda n, h, s: ihdp(n, h, s),
}
