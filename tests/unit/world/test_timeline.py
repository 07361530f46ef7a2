from __future__ import annotations

import numpy as np

from nextbest.world.timeline import EventIndex


def brute_count(cust: np.ndarray, ts: np.ndarray, c: int, t: int, w: int) -> int:
    return int(((cust == c) & (ts <= t) & (ts > t - w)).sum())


def test_window_counts_sums_and_last_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    cust = rng.integers(1, 30, 2_000)
    ts = rng.integers(1_000, 100_000, 2_000)
    amount = rng.random(2_000)
    index = EventIndex(cust, ts, origin=0, amount=amount)
    qc = rng.integers(1, 32, 500)  # includes customers without events
    qt = rng.integers(0, 110_000, 500)
    counts = index.count(qc, qt, 20_000)
    sums = index.total("amount", qc, qt, 20_000)
    found, last = index.last(qc, qt)
    for i in range(qc.size):
        assert counts[i] == brute_count(cust, ts, qc[i], qt[i], 20_000)
        mask = (cust == qc[i]) & (ts <= qt[i]) & (ts > qt[i] - 20_000)
        assert np.isclose(sums[i], amount[mask].sum())
        before = ts[(cust == qc[i]) & (ts <= qt[i])]
        assert found[i] == (before.size > 0)
        if before.size:
            assert last[i] == before.max()
