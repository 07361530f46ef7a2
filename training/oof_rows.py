"""The logged evaluation rows: the training rows with their out-of-fold predictions as columns, so evaluation
and promotion can judge a model on rows it was trained on without the optimism of scoring its own training
data; and how to read them back."""

from __future__ import annotations

from typing import Any

import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.training.dataset import TrainingSet

OOF_PREFIX = "oof__"  # columns of the logged evaluation rows: the out-of-fold predictions (p, revenue)


def with_predictions(ds: TrainingSet, catalog: ActionCatalog, p: np.ndarray, revenue: np.ndarray) -> TrainingSet:
    """The rows with their out-of-fold predictions as columns, logged so that evaluation and promotion can
    judge the model on rows it was trained on without the optimism of scoring its own training data."""
    frame = ds.frame.copy()
    for j, a in enumerate(catalog.ids):
        frame[f"{OOF_PREFIX}p__{a}"] = p[:, j]
        frame[f"{OOF_PREFIX}revenue__{a}"] = revenue[:, j]
    return TrainingSet(frame, ds.numeric, ds.categorical, ds.source, ds.feature_service, ds.truth, ds.notes)


def row_keys(frame: Any) -> np.ndarray:
    """A content hash of each logged row (everything but the out-of-fold columns): the same row logged with
    two training runs gets the same key."""
    import pandas as pd

    cols = sorted(c for c in frame.columns if not str(c).startswith(OOF_PREFIX))
    keys: np.ndarray = pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()
    return keys


def logged_predictions(frame: Any, action_ids: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    """The out-of-fold (p, revenue) logged with an evaluation split, or None (a held-out test split)."""
    cols_p = [f"{OOF_PREFIX}p__{a}" for a in action_ids]
    cols_r = [f"{OOF_PREFIX}revenue__{a}" for a in action_ids]
    if not all(c in frame.columns for c in (*cols_p, *cols_r)):
        return None
    return frame[cols_p].to_numpy(dtype=np.float64), frame[cols_r].to_numpy(dtype=np.float64)
