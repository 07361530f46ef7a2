"""What every external scenario is made of: the ``Scenario`` (a log in ``nextbest train --data`` format, an
action catalog, held-out customers and their truth) and the pieces the generators share: the catalog, logging
timestamps, a confounded logging policy, drawing from it, the log/held-out split. The generators are in
``_scenarios`` (causalml) and ``_obp_scenarios`` (obp)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

CONTROL_DEFAULT = "no_action"
START = pd.Timestamp("2026-06-01", tz="UTC")


@dataclass
class Scenario:
    name: str
    description: str
    log: pd.DataFrame  # customer_id, event_timestamp, features..., action, converted, revenue, propensity
    holdout: pd.DataFrame  # customer_id, features...
    truth: np.ndarray  # (n_holdout, A) expected net value of each action, in ``catalog['actions']`` order
    catalog: dict[str, Any]  # YAML-ready action catalog
    features: list[str]
    log_policy: np.ndarray | None = None  # (n_log, A) logging probability of every action (references only)
    holdout_policy: np.ndarray | None = None  # (n_holdout, A) the same policy on the held-out customers
    value_per_conversion: dict[str, float] = field(default_factory=dict)  # per action, for references
    outcome: str = "binary"  # binary (conversions) or continuous (revenue)

    @property
    def actions(self) -> list[str]:
        return [a["id"] for a in self.catalog["actions"]]

    @property
    def control(self) -> str:
        return str(self.catalog["control"])

    @property
    def costs(self) -> np.ndarray:
        return np.array([float(a.get("cost", 0.0)) for a in self.catalog["actions"]])


def _catalog(actions: list[dict[str, Any]], control: str, currency: str = "EUR") -> dict[str, Any]:
    return {
        "version": "external-1",
        "currency": currency,
        "channels": ["email"],
        "control": control,
        "actions": actions,
    }


def _timestamps(n: int, rng: np.random.Generator) -> pd.Series:
    return pd.Series(START + pd.to_timedelta(rng.integers(0, 60 * 86_400, n), unit="s"))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def targeted_policy(drivers: np.ndarray, n_actions: int, rng: np.random.Generator, floor: float = 0.05) -> np.ndarray:
    """A confounded logging policy: a softmax over actions of random linear scores of ``drivers`` (features
    that also drive outcomes), mixed with a floor so every action keeps probability >= ``floor`` / A * A."""
    z = (drivers - drivers.mean(axis=0)) / (drivers.std(axis=0) + 1e-12)
    weights = rng.normal(0.0, 1.2, size=(z.shape[1], n_actions))
    probs = _softmax(z @ weights)
    return (1 - floor * n_actions) * probs + floor if floor * n_actions < 1 else probs


def _draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(probs.shape[0])[:, None]
    drawn: np.ndarray = (probs.cumsum(axis=1) < u).sum(axis=1)
    return np.minimum(drawn, probs.shape[1] - 1)


def _split(n_total: int, n_log: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n_total)
    return order[:n_log], order[n_log:]


def _arm_scenario(
    meta: tuple[str, str],
    data: pd.DataFrame,
    ids: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    taken: tuple[Sequence[str], np.ndarray],
    outcome: tuple[np.ndarray, np.ndarray],
    probs: np.ndarray,
    net: np.ndarray,
    values: dict[str, float],
    send_cost: dict[str, float],
    catalog_value: float,
) -> Scenario:
    """A scenario whose first arm is the control and whose arms are worth ``catalog_value`` per conversion in
    the catalog: ``meta`` = (name, description); the log holds the ``rows[0]`` customers with the arm each was
    given (``taken`` = (arm names, codes)), its ``outcome`` (converted, revenue) and its probability under
    ``probs`` (every customer x arm); the held-out customers are ``rows[1]``, valued by ``net``."""
    log_rows, hold_rows = rows
    arms, chosen = taken
    log = pd.DataFrame({"customer_id": ids[log_rows], "event_timestamp": _timestamps(len(log_rows), rng)})
    log = pd.concat([log, data.iloc[log_rows].reset_index(drop=True)], axis=1)
    log["action"] = np.array(arms, dtype=object)[chosen]
    log["converted"], log["revenue"] = outcome
    log["propensity"] = probs[log_rows, chosen]
    holdout = pd.concat(
        [pd.DataFrame({"customer_id": ids[hold_rows]}), data.iloc[hold_rows].reset_index(drop=True)], axis=1
    )
    actions = [
        {
            "id": a,
            "channels": ["email"],
            "category": "none" if a == arms[0] else "promo",
            "value": catalog_value,
            "cost": send_cost[a],
        }
        for a in arms
    ]
    return Scenario(
        name=meta[0],
        description=meta[1],
        log=log,
        holdout=holdout,
        truth=net[hold_rows],
        catalog=_catalog(actions, arms[0]),
        features=list(data.columns),
        log_policy=probs[log_rows],
        holdout_policy=probs[hold_rows],
        value_per_conversion=values,
    )
