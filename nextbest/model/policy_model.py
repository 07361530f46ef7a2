"""The scoring model every stage shares: P(convert | x, a) and expected revenue for each action.

A ``PolicyModel`` holds plain LightGBM boosters (saved as LightGBM text files plus a JSON manifest), so it
loads without pickles, predicts natively (about 2x faster than an MLflow pyfunc) and is the same object in
training, evaluation, batch decisioning and the online service.

Conversion heads, one per learner family:
  * ``s``:  one classifier on features plus the action as a categorical column;
  * ``t``:  one classifier per action;
  * ``dr``: a classifier for the control plus, per treatment, a regressor of the effect (DR-learner).
The value head predicts the order value of a conversion from features plus the action's discount.
"""

from __future__ import annotations

import ctypes
import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np

from nextbest.model.descriptors import ActionDescriptors
from nextbest.model.encoding import FeatureEncoder

FORMAT_VERSION = 1
Kind = Literal["s", "t", "dr"]
_EPS = 1e-4


#: Up to this many rows a prediction goes straight to LightGBM's C API (one request: K rows, one per candidate).
FAST_PREDICT_ROWS = 512


class _FastPredict:
    """``booster.predict(X, num_threads=threads)`` for small float64 matrices without the Python wrapper's
    per-call setup (a predictor object, parameter parsing, input checks), which costs more than scoring 20
    rows. Same C function, same arguments, same result; anything unusual goes through ``booster.predict``."""

    def __init__(self, booster: lgb.Booster) -> None:
        from lightgbm.basic import _LIB, _safe_call

        self._lib, self._safe_call = _LIB, _safe_call
        self._features = booster.num_feature()
        self._params: dict[int, bytes] = {}
        self.ok = booster.num_model_per_iteration() == 1  # one output per row (binary, regression)

    def __call__(self, booster: lgb.Booster, X: np.ndarray, threads: int) -> np.ndarray:
        """``booster`` is the one this was made for (not held here: the cache must not keep it alive)."""
        n = X.shape[0]
        if not self.ok or n > FAST_PREDICT_ROWS or X.ndim != 2 or X.shape[1] != self._features:
            out: np.ndarray = booster.predict(X, num_threads=threads)
            return out
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


_FAST: weakref.WeakKeyDictionary[lgb.Booster, _FastPredict | None] = weakref.WeakKeyDictionary()


def _booster_predict(booster: lgb.Booster, X: np.ndarray, threads: int) -> np.ndarray:
    try:
        fast = _FAST[booster]
    except KeyError:
        try:
            fast = _FastPredict(booster)
        except Exception:  # another LightGBM build: the public API is always right
            fast = None
        _FAST[booster] = fast
    if fast is None:
        out: np.ndarray = booster.predict(X, num_threads=threads)
        return out
    result: np.ndarray = fast(booster, X, threads)
    return result


@dataclass
class ConversionHead:
    kind: Kind
    boosters: dict[str, lgb.Booster]
    descriptors: ActionDescriptors | None = None  # s-learner: the action columns appended to the features

    def predict(self, X: np.ndarray, actions: Sequence[str], control: str, threads: int = 1) -> np.ndarray:
        n, k = X.shape[0], len(actions)
        if self.kind == "s":
            assert self.descriptors is not None
            stacked = self.descriptors.stacked(X, actions)
            return _booster_predict(self.boosters["all"], stacked, threads).reshape(k, n).T
        if self.kind == "t":
            return np.column_stack([_booster_predict(self.boosters[a], X, threads) for a in actions])
        base = _booster_predict(self.boosters[control], X, threads)
        cols = [base if a == control else base + _booster_predict(self.boosters[a], X, threads) for a in actions]
        return np.column_stack(cols)


@dataclass
class ValueHead:
    """Order value of a conversion; falls back to per-action constants when no booster was trained."""

    booster: lgb.Booster | None
    discounts: dict[str, float]
    fallback: dict[str, float]
    # per candidate tuple: the distinct discounts and, per candidate, the index of its discount
    _discounts: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def predict(self, X: np.ndarray, actions: Sequence[str], threads: int = 1) -> np.ndarray:
        n = X.shape[0]
        if self.booster is None:
            return np.tile(np.array([self.fallback[a] for a in actions]), (n, 1))
        # The value depends on the action through its discount only: predict once per distinct discount
        # (channel variants of an offer share one) and spread the columns to the actions.
        key = tuple(actions)
        found = self._discounts.get(key)
        if found is None:
            disc = np.array([self.discounts[a] for a in actions], dtype=np.float64)
            found = self._discounts[key] = np.unique(disc, return_inverse=True)
        distinct, column = found
        u = len(distinct)
        stacked = np.empty((u, n, X.shape[1] + 1), dtype=np.float64)  # X with each distinct discount appended
        stacked[:, :, :-1] = X
        stacked[:, :, -1] = distinct[:, None]
        value = _booster_predict(self.booster, stacked.reshape(u * n, -1), threads).reshape(u, n).T
        return np.maximum(value[:, column], 0.0)


@dataclass
class PolicyModel:
    encoder: FeatureEncoder
    action_ids: tuple[str, ...]
    control: str
    conversion: ConversionHead
    value: ValueHead
    calibration: tuple[float, float] | None = None  # Platt scaling on the logit: sigmoid(a * logit(p) + b)
    decision_margin: float = 0.0  # act only when the expected incremental net value exceeds this
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.encoder.feature_names

    def predict(
        self, X: np.ndarray, actions: Sequence[str] | None = None, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """(p_convert, expected_revenue), each (n, K) for ``actions`` (default: all model actions)."""
        wanted = tuple(actions) if actions is not None else self.action_ids
        unknown = [a for a in wanted if a not in self.action_ids]
        if unknown:
            raise ValueError(f"model {self.metadata.get('name', '')} has no scores for action(s) {unknown}")
        p = np.clip(self.conversion.predict(X, wanted, self.control, threads), _EPS, 1.0 - _EPS)
        if self.calibration is not None:
            a, b = self.calibration
            p = 1.0 / (1.0 + np.exp(-(a * np.log(p / (1.0 - p)) + b)))
        return p, p * self.value.predict(X, wanted, threads)

    def predict_records(
        self, rows: Sequence[dict[str, Any]], actions: Sequence[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.predict(self.encoder.transform_records(rows), actions)

    # Persistence --------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        files = {}
        for key, booster in self.conversion.boosters.items():
            files[key] = f"conversion_{key}.txt"
            booster.save_model(str(directory / files[key]))
        value_file = None
        if self.value.booster is not None:
            value_file = "value.txt"
            self.value.booster.save_model(str(directory / value_file))
        manifest = {
            "format_version": FORMAT_VERSION,
            "action_ids": list(self.action_ids),
            "control": self.control,
            "encoder": self.encoder.to_dict(),
            "conversion": {
                "kind": self.conversion.kind,
                "files": files,
                "descriptors": self.conversion.descriptors.to_dict() if self.conversion.descriptors else None,
            },
            "value": {"file": value_file, "discounts": self.value.discounts, "fallback": self.value.fallback},
            "calibration": list(self.calibration) if self.calibration else None,
            "decision_margin": self.decision_margin,
            "metadata": self.metadata,
        }
        (directory / "model.json").write_text(json.dumps(manifest, indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: Path) -> PolicyModel:
        manifest = json.loads((directory / "model.json").read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory}: unsupported model format {manifest.get('format_version')}")
        conv = manifest["conversion"]
        boosters = {k: lgb.Booster(model_file=str(directory / f)) for k, f in conv["files"].items()}
        value = manifest["value"]
        return cls(
            encoder=FeatureEncoder.from_dict(manifest["encoder"]),
            action_ids=tuple(manifest["action_ids"]),
            control=manifest["control"],
            conversion=ConversionHead(
                conv["kind"],
                boosters,
                ActionDescriptors.from_dict(conv["descriptors"]) if conv["descriptors"] else None,
            ),
            value=ValueHead(
                lgb.Booster(model_file=str(directory / value["file"])) if value["file"] else None,
                {k: float(v) for k, v in value["discounts"].items()},
                {k: float(v) for k, v in value["fallback"].items()},
            ),
            calibration=tuple(manifest["calibration"]) if manifest["calibration"] else None,  # type: ignore[arg-type]
            decision_margin=float(manifest.get("decision_margin", 0.0)),
            metadata=manifest["metadata"],
        )
