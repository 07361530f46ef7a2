"""The parts a policy model is made of: per-action heads over plain LightGBM boosters.

* :class:`ActionHead` predicts one number per (customer, action): P(convert) for a conversion head, expected
  revenue for a revenue head. Its kind says how the action enters:
    ``s``:  one booster on the features plus action descriptors (``nextbest.model.descriptors``);
    ``t``:  one booster per action;
    ``dr``: a booster for the control plus, per treatment, a booster of the difference (DR-learner).
* :class:`ValueHead` predicts the order value of a conversion, E[revenue | converted, x, a], from the features,
  the action and its discount (or per-action constants when the data has one value per action).
* :class:`Member` is one learner of a blended model: a conversion head (times the value head) or a revenue
  head, with its blending weight.

Small matrices (one request: K rows, one per candidate) go straight to LightGBM's C API.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import lightgbm as lgb
import numpy as np

from nextbest.model.descriptors import ActionDescriptors

Kind = Literal["s", "t", "dr"]
Target = Literal["conversion", "revenue"]
EPS = 1e-4

#: Up to this many rows a prediction goes straight to LightGBM's C API (one request: K rows, one per candidate).
FAST_PREDICT_ROWS = 512


class _FastPredict:
    """``booster.predict(X, num_threads=threads)`` for small float64 matrices without the Python wrapper's
    per-call setup (a predictor object, parameter parsing, input checks), which costs more than scoring 20
    rows. Same C function, same arguments, same result; anything unusual goes through ``booster.predict``."""

    def __init__(self, booster: lgb.Booster) -> None:
        from lightgbm.basic import _LIB, _safe_call  # type: ignore[attr-defined]  # private, not exported

        self._lib, self._safe_call = _LIB, _safe_call
        self._features = booster.num_feature()
        self._params: dict[int, bytes] = {}
        self.ok = booster.num_model_per_iteration() == 1  # one output per row (binary, regression)

    def __call__(self, booster: lgb.Booster, X: np.ndarray, threads: int) -> np.ndarray:
        """``booster`` is the one this was made for (not held here: the cache must not keep it alive)."""
        n = X.shape[0]
        if not self.ok or n > FAST_PREDICT_ROWS or X.ndim != 2 or X.shape[1] != self._features:
            return cast(np.ndarray, booster.predict(X, num_threads=threads))
        X = np.ascontiguousarray(X, dtype=np.float64)
        params = self._params.get(threads)
        if params is None:
            params = self._params[threads] = f"num_threads={threads}".encode()
        preds = np.empty(n, dtype=np.float64)
        written = ctypes.c_int64(0)
        self._safe_call(
            self._lib.LGBM_BoosterPredictForMat(
                booster._handle,
                X.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_int(1),  # float64
                ctypes.c_int32(n),
                ctypes.c_int32(X.shape[1]),
                ctypes.c_int(1),  # row major
                ctypes.c_int(0),  # normal prediction
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(int(booster.best_iteration)),  # as booster.predict's default
                ctypes.c_char_p(params),
                ctypes.byref(written),
                preds.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        if written.value != n:
            raise ValueError(f"LightGBM returned {written.value} predictions for {n} rows")
        return preds


def _sigmoid(raw: np.ndarray) -> np.ndarray:
    out: np.ndarray = 1.0 / (1.0 + np.exp(-raw))
    return out


def _identity(raw: np.ndarray) -> np.ndarray:
    return raw


# How LightGBM turns a raw score into a prediction, for the objectives training uses (sigmoid 1.0, the default).
_TRANSFORMS = {"binary": _sigmoid, "regression": _identity, "l2": _identity}


def _staged(booster: lgb.Booster, X: np.ndarray, counts: Sequence[int], threads: int) -> list[np.ndarray]:
    """``booster.predict(X, num_iteration=c)`` for every count ``c`` (>= 1), each tree evaluated once."""
    transform = _TRANSFORMS.get(str(booster.params.get("objective", "")))
    if transform is None or booster.params.get("sigmoid", 1.0) != 1.0:  # not additive the simple way: one by one
        return [np.asarray(booster.predict(X, num_iteration=c, num_threads=threads)) for c in counts]
    raw, done, at = np.zeros(X.shape[0]), 0, {}
    for c in sorted(set(counts)):
        raw = raw + booster.predict(
            X, start_iteration=done, num_iteration=c - done, raw_score=True, num_threads=threads
        )
        done, at[c] = c, transform(raw)
    return [at[c] for c in counts]


_FAST: weakref.WeakKeyDictionary[lgb.Booster, _FastPredict | None] = weakref.WeakKeyDictionary()


def booster_predict(booster: lgb.Booster, X: np.ndarray, threads: int) -> np.ndarray:
    try:
        fast = _FAST[booster]
    except KeyError:
        try:
            fast = _FastPredict(booster)
        except Exception:  # another LightGBM build: the public API is always right
            fast = None
        _FAST[booster] = fast
    if fast is None:
        return cast(np.ndarray, booster.predict(X, num_threads=threads))
    result: np.ndarray = fast(booster, X, threads)
    return result


@dataclass
class ActionHead:
    """One output per (row, action): see the module docstring for the kinds."""

    kind: Kind
    boosters: dict[str, lgb.Booster]
    descriptors: ActionDescriptors | None = None  # s-learner: the action columns appended to the features

    def predict(
        self,
        X: np.ndarray,
        actions: Sequence[str],
        control: str,
        threads: int = 1,
        iterations: Mapping[str, int] | None = None,
    ) -> np.ndarray:
        """(n, K) for ``actions``; ``iterations`` (booster key -> trees) scores with the first trees only
        (training compares tree counts this way)."""

        def run(key: str, data: np.ndarray) -> np.ndarray:
            if iterations is None:
                return booster_predict(self.boosters[key], data, threads)
            return cast(
                np.ndarray, self.boosters[key].predict(data, num_iteration=iterations[key], num_threads=threads)
            )

        inputs = self._inputs(X, actions, control)
        return self._combine({key: run(key, data) for key, data in inputs.items()}, X.shape[0], actions, control)

    def predict_staged(
        self,
        X: np.ndarray,
        actions: Sequence[str],
        control: str,
        stages: Sequence[Mapping[str, int]],
        threads: int = 1,
    ) -> list[np.ndarray]:
        """``predict(X, actions, control, threads, iterations=s)`` for every ``s`` in ``stages``, each tree
        evaluated once: boosting is additive, so raw scores are summed over the trees between consecutive
        counts and transformed at each count (training compares several tree counts of the same boosters)."""
        inputs = self._inputs(X, actions, control)
        outs = {
            key: _staged(self.boosters[key], data, [s[key] for s in stages], threads) for key, data in inputs.items()
        }
        return [
            self._combine({key: out[i] for key, out in outs.items()}, X.shape[0], actions, control)
            for i in range(len(stages))
        ]

    def _inputs(self, X: np.ndarray, actions: Sequence[str], control: str) -> dict[str, np.ndarray]:
        """The matrix each booster scores: the stacked (row, action) matrix for ``s``, the features otherwise."""
        if self.kind == "s":
            assert self.descriptors is not None
            return {"all": self.descriptors.stacked(X, actions)}
        if self.kind == "t":
            return {a: X for a in actions}
        return {key: X for key in (control, *actions)}

    def _combine(self, out: Mapping[str, np.ndarray], n: int, actions: Sequence[str], control: str) -> np.ndarray:
        """(n, K) from the boosters' outputs: unstacked (``s``), side by side (``t``), control plus effect (``dr``)."""
        if self.kind == "s":
            return out["all"].reshape(len(actions), n).T
        if self.kind == "t":
            return np.column_stack([out[a] for a in actions])
        base = out[control]
        return np.column_stack([base if a == control else base + out[a] for a in actions])

    @property
    def trees(self) -> int:
        return sum(b.num_trees() for b in self.boosters.values())


ConversionHead = ActionHead  # the name models and tests have used for the conversion learner's head


@dataclass
class ValueHead:
    """Order value of a conversion, E[revenue | converted, x, a]; per-action constants without a booster.

    With ``codes`` (action -> code; NaN for an action with too few converters to learn its own value) the
    booster's inputs are the features, the action code (categorical) and the action's discount, so actions
    that differ in revenue per conversion for any reason (a conversion cost, another product) are priced
    apart. Without ``codes`` (models trained before) they are the features and the discount only."""

    booster: lgb.Booster | None
    discounts: dict[str, float]
    fallback: dict[str, float]
    codes: dict[str, float] | None = None
    # per candidate tuple: the distinct (code, discount) pairs and, per candidate, the index of its pair
    _columns: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def predict(self, X: np.ndarray, actions: Sequence[str], threads: int = 1) -> np.ndarray:
        n = X.shape[0]
        if self.booster is None:
            return np.tile(np.array([self.fallback[a] for a in actions]), (n, 1))
        # Predict once per distinct input (channel variants of an offer share one) and spread the columns.
        key = tuple(actions)
        found = self._columns.get(key)
        if found is None:
            if len(self._columns) >= 64:
                self._columns.clear()
            found = self._columns[key] = self._distinct(actions)
        distinct, column = found
        u, width = distinct.shape
        stacked = np.empty((u, n, X.shape[1] + width), dtype=np.float64)
        stacked[:, :, : X.shape[1]] = X
        stacked[:, :, X.shape[1] :] = distinct[:, None, :]
        value = booster_predict(self.booster, stacked.reshape(u * n, -1), threads).reshape(u, n).T
        return np.maximum(value[:, column], 0.0) if self.codes is None else value[:, column]

    def _distinct(self, actions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        disc = [self.discounts[a] for a in actions]
        if self.codes is None:
            inputs = np.array(disc, dtype=np.float64)[:, None]
        else:
            inputs = np.column_stack([[self.codes.get(a, np.nan) for a in actions], disc]).astype(np.float64)
        rounded = np.where(np.isnan(inputs), -1.0, inputs)  # NaN never equals itself; codes are >= 0
        _, first, column = np.unique(rounded, axis=0, return_index=True, return_inverse=True)
        return inputs[first], column.ravel()

    @property
    def trees(self) -> int:
        return 0 if self.booster is None else int(self.booster.num_trees())


@dataclass(frozen=True)
class Member:
    """One learner of a blended model. A conversion member's expected revenue is its calibrated P(convert)
    times the model's value head. A revenue member's head predicts the net value of each action (revenue
    minus the action's cost at training, ``offset``), and its expected revenue adds the offset back: learning
    net value puts the learner's shrinkage of small effects (toward no effect) at the decision boundary
    instead of at "not worth its cost", which treated 96.8% instead of 99.7% of the customers where treating
    all was right (causalml's constant-effect setup)."""

    weight: float
    target: Target
    head: ActionHead | None  # None: a constant per action (``offset``), the average effect of each action
    calibration: tuple[float, float] | None = None  # conversion members: Platt scaling on the logit
    name: str = ""
    offset: Mapping[str, float] | None = None  # revenue members: added per action to the head's output

    def predict(self, X: np.ndarray, actions: Sequence[str], control: str, threads: int = 1) -> np.ndarray:
        if self.head is None:
            assert self.offset is not None and self.target == "revenue"
            return np.tile(np.array([self.offset.get(a, 0.0) for a in actions]), (X.shape[0], 1))
        raw = self.head.predict(X, actions, control, threads)
        if self.target == "conversion":
            return calibrated(raw, self.calibration)
        if self.offset:
            raw = raw + np.array([self.offset.get(a, 0.0) for a in actions])[None, :]
        return raw


def calibrated(p: np.ndarray, calibration: tuple[float, float] | None) -> np.ndarray:
    """Clip to (EPS, 1 - EPS) and apply Platt scaling, sigmoid(a * logit(p) + b), when given."""
    q: np.ndarray = np.clip(p, EPS, 1.0 - EPS)
    if calibration is None:
        return q
    a, b = calibration
    out: np.ndarray = 1.0 / (1.0 + np.exp(-(a * np.log(q / (1.0 - q)) + b)))
    return out
