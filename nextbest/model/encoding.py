"""Turns feature values into the float matrix the boosters take, identically in training and serving.

Categoricals get integer codes from a vocabulary fixed at training time (unknown or missing -> NaN, which
LightGBM routes like a missing value), numerics become float64 with NaN for missing. The serving path takes
plain dicts and avoids pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FeatureEncoder:
    numeric: tuple[str, ...]
    categorical: dict[str, tuple[str, ...]]
    _codes: dict[str, dict[str, float]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        codes = {name: {v: float(i) for i, v in enumerate(vocab)} for name, vocab in self.categorical.items()}
        object.__setattr__(self, "_codes", codes)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.numeric + tuple(self.categorical)

    @property
    def categorical_indices(self) -> list[int]:
        return list(range(len(self.numeric), len(self.feature_names)))

    @classmethod
    def fit(cls, frame: Any, numeric: Sequence[str], categorical: Sequence[str]) -> FeatureEncoder:
        """Learn the categorical vocabularies from a pandas frame."""
        vocab = {c: tuple(sorted(str(v) for v in frame[c].dropna().unique())) for c in categorical}
        return cls(tuple(numeric), vocab)

    def transform_frame(self, frame: Any) -> np.ndarray:
        """(n, f) float64 matrix from a pandas frame holding at least the encoder's columns."""
        return self.transform_columns({name: frame[name] for name in self.feature_names}, len(frame))

    def transform_columns(self, columns: Mapping[str, Any], n: int) -> np.ndarray:
        """(n, f) float64 matrix from columns (name -> n values; ``None``/NaN missing): the batch path."""
        import pandas as pd

        out = np.empty((n, len(self.feature_names)), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            values = pd.to_numeric(pd.Series(columns[name], copy=False), errors="coerce")
            out[:, j] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        for j, name in enumerate(self.categorical, start=len(self.numeric)):
            codes = self._codes[name]
            values = pd.Series(columns[name], copy=False)
            out[:, j] = values.map(lambda v, c=codes: np.nan if v is None else c.get(str(v), np.nan)).to_numpy(
                dtype=np.float64
            )
        return out

    def transform_records(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """(n, f) matrix from dicts of feature values (``None`` for missing): the per-request path."""
        out = np.full((len(rows), len(self.feature_names)), np.nan, dtype=np.float64)
        k = len(self.numeric)
        for i, row in enumerate(rows):
            for j, name in enumerate(self.numeric):
                value = row.get(name)
                if value is not None:
                    out[i, j] = float(value)
            for j, name in enumerate(self.categorical, start=k):
                value = row.get(name)
                if value is not None:
                    out[i, j] = self._codes[name].get(str(value), np.nan)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "categorical": {k: list(v) for k, v in self.categorical.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoder:
        return cls(tuple(data["numeric"]), {k: tuple(v) for k, v in data["categorical"].items()})
