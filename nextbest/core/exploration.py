"""Measurement: a global control group and exploration, with the exact probability of every served action so
off-policy evaluation and retraining on the decision log are unbiased.

Exploration draws on a share ``rate`` of decisions. Uniform exploration (``mode: uniform``) then serves any
eligible action with equal probability, which spends most of its budget on actions the model already knows
to be bad. Value-aware exploration (``mode: value``, the default) spends it where it teaches: a softmax over
the candidates' estimated net values (temperature in units of the model's value scale), so near-ties, where
the model is least sure which action is better, are explored most and clearly worse actions rarely; a
``floor`` share of the budget stays uniform, so every eligible action keeps a probability of at least
``rate * floor / m`` and off-policy estimates stay defined for every action. Serving probability:

    pi(a) = (1 - rate) * 1[a = greedy] + rate * q(a),   q = (1 - floor) * softmax(v / T) + floor / m

Both draw their randomness from a keyed hash instead of a random generator: the control group from the
customer id (a customer stays in or out across processes, restarts and Python versions, unlike ``hash()``),
exploration from the decision id (replaying a decision reproduces it exactly). BLAKE2b output is uniform, so
the top 53 bits make an exact uniform draw in [0, 1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

_SCALE = 2.0**-53


class Exploration(BaseModel):
    """Exploration and control-group settings (the service maps its settings onto this)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    rate: float = Field(0.05, ge=0.0, le=1.0, description="Share of decisions on which exploration draws.")
    control_share: float = Field(
        0.01, ge=0.0, le=1.0, description="Share of customers who always get the control action."
    )
    control_salt: str = Field("nextbest-global-control", min_length=1)
    explore_salt: str = Field("nextbest-explore", min_length=1)
    mode: Literal["value", "uniform"] = Field(
        "value", description="value: near-ties explored most (softmax over net values); uniform: any eligible."
    )
    temperature: float = Field(
        0.05, gt=0.0, le=100.0, description="Softmax temperature, in units of the model's value scale."
    )
    floor: float = Field(
        0.02, ge=0.0, le=1.0, description="Share of the exploration spread uniformly over the eligible actions."
    )

    def weights(self, net_value: np.ndarray, eligible: np.ndarray, scale: float | None) -> np.ndarray | None:
        """The exploration distribution q (n, K) for value-aware exploration; None means uniform (the mode,
        or a model that carries no value scale)."""
        if self.mode != "value" or scale is None or not scale > 0:
            return None
        return exploration_weights(net_value, eligible, self.temperature * scale, self.floor)


def exploration_weights(net_value: np.ndarray, eligible: np.ndarray, temperature: float, floor: float) -> np.ndarray:
    """(n, K): softmax of the eligible candidates' net values at ``temperature`` (currency), mixed with a
    uniform share ``floor``; zero for ineligible candidates, each row sums to one."""
    net = np.atleast_2d(np.asarray(net_value, dtype=np.float64))
    ok = np.atleast_2d(np.asarray(eligible, dtype=bool))
    best = np.max(np.where(ok, net, -np.inf), axis=1, keepdims=True)
    z = np.where(ok, (net - best) / temperature, -np.inf)
    soft = np.exp(z)
    soft /= soft.sum(axis=1, keepdims=True)
    m = ok.sum(axis=1, keepdims=True)
    out: np.ndarray = (1.0 - floor) * soft + floor * ok / m
    return out


def _pick(weights: np.ndarray, eligible: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inverse CDF: the candidate whose cumulative weight first exceeds ``v`` in [0, 1), per row (rounding
    at the top end falls to the last eligible candidate)."""
    cum = np.cumsum(weights, axis=1)
    above = cum > v[:, None]
    last = eligible.shape[1] - 1 - np.argmax(eligible[:, ::-1], axis=1)
    picked: np.ndarray = np.where(above.any(axis=1), np.argmax(above, axis=1), last)
    return picked


@lru_cache(maxsize=64)
def _person(salt: str) -> bytes:
    """BLAKE2b's 16-byte personalisation, derived from the whole salt (long salts must not collide)."""
    return hashlib.blake2b(salt.encode(), digest_size=16).digest()


def unit_draw(key: str, salt: str) -> float:
    """A uniform number in [0, 1) determined by ``salt`` and ``key`` only."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, person=_person(salt)).digest()
    return (int.from_bytes(digest, "big") >> 11) * _SCALE


def unit_draws(keys: Sequence[str], salt: str) -> np.ndarray:
    person = _person(salt)
    blake = hashlib.blake2b
    ints = [int.from_bytes(blake(k.encode(), digest_size=8, person=person).digest(), "big") >> 11 for k in keys]
    return np.array(ints, dtype=np.float64) * _SCALE


def in_control_group(customer_id: str | int, share: float, salt: str) -> bool:
    """Stable membership of the global control group. Ids are compared as text, so 42 and "42" agree."""
    return share > 0.0 and unit_draw(str(customer_id), salt) < share


def control_group_mask(customer_ids: Sequence[str | int] | np.ndarray, share: float, salt: str) -> np.ndarray:
    if share <= 0.0:
        return np.zeros(len(customer_ids), dtype=bool)
    mask: np.ndarray = unit_draws([str(c) for c in customer_ids], salt) < share
    return mask


@dataclass(frozen=True, slots=True)
class Served:
    """The served candidate and the exact probability the policy had of serving it.

    ``explored`` is true when exploration served something other than the greedy choice (an exploration
    draw that lands on the greedy action is indistinguishable from exploiting, and its probability says so)."""

    index: int
    greedy: int
    probability: float
    explored: bool
    control: bool


def serve(
    greedy: int,
    eligible: np.ndarray,
    rate: float,
    decision_id: str,
    *,
    salt: str = "nextbest-explore",
    control: bool = False,
    control_index: int = 0,
    weights: np.ndarray | None = None,
) -> Served:
    """Exploration over the eligible candidates (the greedy one and the control included).

    Uniform (``weights`` None), with ``m`` eligible candidates: greedy is served with probability
    ``1 - rate + rate/m``, every other eligible one with ``rate/m``. With ``weights`` (the exploration
    distribution, (K,) or (1, K), see :meth:`Exploration.weights`): ``1 - rate + rate*q(greedy)`` and
    ``rate*q(a)``. A control-group customer gets the control with probability 1."""
    if control:
        return Served(control_index, greedy, 1.0, False, True)
    options = np.flatnonzero(eligible)
    m = len(options)
    if rate <= 0.0 or m <= 1:
        return Served(greedy, greedy, 1.0, False, False)
    u = unit_draw(decision_id, salt)
    if weights is not None:
        q = np.atleast_2d(weights)
        index = int(_pick(q, np.atleast_2d(eligible), np.array([u / rate]))[0]) if u < rate else greedy
        probability = rate * float(q[0, index]) + (1.0 - rate if index == greedy else 0.0)
        return Served(index, greedy, probability, index != greedy, False)
    index = int(options[min(int(u / rate * m), m - 1)]) if u < rate else greedy
    share = rate / m
    probability = 1.0 - rate + share if index == greedy else share
    return Served(index, greedy, probability, index != greedy, False)


@dataclass(frozen=True)
class ServedBatch:
    index: np.ndarray  # (n,) served candidate
    greedy: np.ndarray  # (n,)
    probability: np.ndarray  # (n,)
    explored: np.ndarray  # (n,) bool
    control: np.ndarray  # (n,) bool


def serve_batch(
    greedy: np.ndarray,
    eligible: np.ndarray,
    rate: float,
    decision_ids: Sequence[str],
    *,
    salt: str = "nextbest-explore",
    control: np.ndarray | None = None,
    control_index: int = 0,
    weights: np.ndarray | None = None,
) -> ServedBatch:
    """:func:`serve` for n decisions at once (``weights`` (n, K) or None); identical results row by row."""
    greedy = np.asarray(greedy, dtype=np.int64)
    eligible = np.asarray(eligible, dtype=bool)
    n = len(greedy)
    ctrl = np.zeros(n, dtype=bool) if control is None else np.asarray(control, dtype=bool)
    m = eligible.sum(axis=1)
    index = greedy.copy()
    probability = np.ones(n)
    if rate > 0.0 and n and weights is not None:
        u = unit_draws(decision_ids, salt)
        explore = (u < rate) & (m > 1)
        picked = _pick(weights, eligible, np.minimum(u / rate, 1.0))
        index = np.where(explore, picked, greedy)
        q = weights[np.arange(n), index]
        probability = np.where(m > 1, rate * q + np.where(index == greedy, 1.0 - rate, 0.0), 1.0)
    elif rate > 0.0 and n:
        u = unit_draws(decision_ids, salt)
        slot = np.minimum((u / rate * m).astype(np.int64), np.maximum(m - 1, 0))
        # the slot-th eligible column of each row
        picked = np.argmax(np.cumsum(eligible, axis=1) > slot[:, None], axis=1)
        explore = (u < rate) & (m > 1)
        index = np.where(explore, picked, greedy)
        share = np.where(m > 1, rate / np.maximum(m, 1), 0.0)
        probability = np.where(m > 1, np.where(index == greedy, 1.0 - rate + share, share), 1.0)
    index = np.where(ctrl, control_index, index)
    probability = np.where(ctrl, 1.0, probability)
    explored = (index != greedy) & ~ctrl
    return ServedBatch(index, greedy, probability, explored, ctrl)
