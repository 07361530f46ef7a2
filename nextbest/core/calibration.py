"""Quality of predicted probabilities: ranking (AUC), fit (log loss, Brier) and calibration.

Arbitration multiplies probabilities by money (``uplift x value - cost``), so a model that ranks well but is
miscalibrated still picks the wrong action when it compares against a fixed cost or against ``no_action``.
That is why calibration is reported beside AUC, not instead of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Array = np.ndarray

Strategy = Literal["quantile", "uniform"]


@dataclass(frozen=True)
class CalibrationTable:
    """Per non-empty bin: mean predicted probability, observed positive rate and number of rows."""

    mean_predicted: Array
    observed_rate: Array
    count: Array


def _validate(p: Array, y: Array) -> tuple[Array, Array]:
    pa = np.asarray(p, dtype=np.float64)
    ya = np.asarray(y)
    if pa.ndim != 1 or pa.size == 0:
        raise ValueError(f"p must be a non-empty 1-d array; got shape {pa.shape}")
    if ya.shape != pa.shape:
        raise ValueError(f"y must have the shape of p {pa.shape}; got {ya.shape}")
    if not np.all((pa >= 0.0) & (pa <= 1.0)):
        raise ValueError("p must hold probabilities in [0, 1]")
    if not np.all((ya == 0) | (ya == 1)):
        raise ValueError("y must hold binary labels (0/1 or bool)")
    return pa, ya.astype(np.float64)


def calibration_table(p: Array, y: Array, n_bins: int = 10, strategy: Strategy = "quantile") -> CalibrationTable:
    """Reliability table. ``quantile`` bins hold equal numbers of rows, so every point is equally precise even
    when predictions crowd near 0 (conversion rates usually do); ``uniform`` bins are equal-width on [0, 1].
    Bins that would be empty, or that collapse because many predictions are equal, are dropped."""
    pa, ya = _validate(p, y)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1; got {n_bins}")
    if strategy == "quantile":
        edges = np.unique(np.quantile(pa, np.linspace(0.0, 1.0, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform'; got {strategy!r}")
    # inner edges only: the lowest and highest values fall into the first and last bins, p == 1 included
    bins = np.searchsorted(edges[1:-1], pa, side="right")
    size = max(len(edges) - 1, 1)
    count = np.bincount(bins, minlength=size)
    sum_p = np.bincount(bins, weights=pa, minlength=size)
    sum_y = np.bincount(bins, weights=ya, minlength=size)
    keep = count > 0
    return CalibrationTable(
        mean_predicted=sum_p[keep] / count[keep],
        observed_rate=sum_y[keep] / count[keep],
        count=count[keep].astype(np.int64),
    )


def expected_calibration_error(table: CalibrationTable) -> float:
    """Row-weighted mean of ``|mean predicted - observed rate|`` over the bins: the average error, in
    probability points, a customer's prediction carries."""
    total = int(table.count.sum())
    if total == 0:
        raise ValueError("calibration table is empty")
    gap = np.abs(table.mean_predicted - table.observed_rate)
    return float((table.count * gap).sum() / total)


def brier_score(p: Array, y: Array) -> float:
    """Mean squared error of the probabilities; unlike log loss it stays bounded for confident mistakes."""
    pa, ya = _validate(p, y)
    return float(np.mean((pa - ya) ** 2))


def log_loss(p: Array, y: Array, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood; ``p`` is clipped to ``[eps, 1 - eps]`` so one confident mistake costs
    ``-log(eps)`` instead of infinity."""
    if not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be in (0, 0.5); got {eps!r}")
    pa, ya = _validate(p, y)
    pc = np.clip(pa, eps, 1.0 - eps)
    return float(-np.mean(ya * np.log(pc) + (1.0 - ya) * np.log1p(-pc)))


def roc_auc(p: Array, y: Array) -> float:
    """Probability that a random positive scores above a random negative (ties count one half).

    Computed from average ranks (Mann-Whitney U) in O(n log n), so it scales to millions of rows. Undefined,
    and rejected, when only one class is present."""
    pa, ya = _validate(p, y)
    n_pos = float(ya.sum())
    n_neg = float(ya.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs both positive and negative labels")
    _, inverse, counts = np.unique(pa, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    avg_rank = ends - (counts - 1) / 2.0
    rank_sum = float(avg_rank[inverse][ya == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
