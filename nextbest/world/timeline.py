"""Vectorised look-ups over per-customer event streams: counts and sums in a window, the last event before a
time. Millions of (customer, time) queries run in a few numpy ``searchsorted`` calls, which is what lets
100k customers with weekly snapshots generate in seconds.
"""

from __future__ import annotations

import numpy as np

_SPAN = np.int64(1) << np.int64(33)  # seconds per customer slot: ~272 years, far beyond any history


class EventIndex:
    """Events of many customers, sorted by (customer, time), queried at arbitrary (customer, time) pairs."""

    def __init__(self, customer: np.ndarray, ts: np.ndarray, origin: int, **columns: np.ndarray) -> None:
        order = np.lexsort((ts, customer))
        self.origin = int(origin)
        self.customer = customer[order].astype(np.int64)
        self.ts = ts[order].astype(np.int64)
        rel = self.ts - self.origin
        if rel.size and (rel.min() < 0 or rel.max() >= _SPAN):
            raise ValueError("event timestamps fall outside the index span")
        self.key = self.customer * _SPAN + rel
        self.columns = {name: values[order] for name, values in columns.items()}
        self._cumsums: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.key.size)

    def _pos(self, customer: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Number of events with key <= (customer, t): index one past the last event at or before t."""
        rel = np.clip(np.asarray(t, dtype=np.int64) - self.origin, -1, _SPAN - 1)
        return np.searchsorted(self.key, customer.astype(np.int64) * _SPAN + rel, side="right")

    def count(self, customer: np.ndarray, t: np.ndarray, window: int) -> np.ndarray:
        """Events in (t - window, t]."""
        out: np.ndarray = (self._pos(customer, t) - self._pos(customer, np.asarray(t) - window)).astype(np.int64)
        return out

    def total(self, column: str, customer: np.ndarray, t: np.ndarray, window: int) -> np.ndarray:
        """Sum of ``column`` over events in (t - window, t]."""
        csum = self._cumsums.get(column)
        if csum is None:
            csum = np.concatenate([[0.0], np.cumsum(self.columns[column], dtype=np.float64)])
            self._cumsums[column] = csum
        out: np.ndarray = csum[self._pos(customer, t)] - csum[self._pos(customer, np.asarray(t) - window)]
        return out

    def last(self, customer: np.ndarray, t: np.ndarray, column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(found, value) of the last event at or before t: its timestamp, or ``column`` when given."""
        idx = self._pos(customer, t) - 1
        safe = np.maximum(idx, 0)
        found = (idx >= 0) & (self.customer[safe] == customer) if self.key.size else np.zeros(idx.shape, bool)
        source = self.ts if column is None else self.columns[column]
        if not self.key.size:
            return found, np.zeros(idx.shape, dtype=source.dtype)
        return found, source[safe]


def poisson_times(
    rng: np.random.Generator, customer: np.ndarray, rate_per_30d: np.ndarray, start: int, end: int
) -> tuple[np.ndarray, np.ndarray]:
    """A homogeneous Poisson process per customer on [start, end): (customer of each event, its time)."""
    span = end - start
    counts = rng.poisson(rate_per_30d * span / (30 * 86_400))
    who = np.repeat(customer, counts)
    when = start + (rng.random(who.size) * span).astype(np.int64)
    return who, when
