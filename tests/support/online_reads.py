"""The two online read paths (``direct`` and Feast's ``get_online_features``) compared value by value."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from nextbest.features.online import CustomerFeatures, OnlineFeatureReader


def compare_read_paths(store: Any, customer_ids: Sequence[int], times: Sequence[float]) -> list[CustomerFeatures]:
    """Read ``customer_ids`` at each of ``times`` both ways; assert identical results, return the direct rows."""
    direct = OnlineFeatureReader(store, "nba_v1", path="direct")
    generic = OnlineFeatureReader(store, "nba_v1", path="feature_service")
    assert direct._direct is not None, "the direct path fell back to get_online_features"
    out: list[CustomerFeatures] = []
    for now in times:
        a, b = direct.read(customer_ids, now), generic.read(customer_ids, now)
        for x, y in zip(a, b, strict=True):
            assert x.view_status == y.view_status, (x.customer_id, now)
            assert x.view_timestamps == y.view_timestamps, (x.customer_id, now)
            differ = {k: (x.values[k], y.values.get(k)) for k in x.values if x.values[k] != y.values.get(k)}
            assert not differ and x.values.keys() == y.values.keys(), (x.customer_id, now, differ)
            assert all(type(v) is type(y.values[k]) for k, v in x.values.items()), (x.customer_id, now)
        out.extend(a)
    return out


def assert_stale_after_a_missed_batch(store: Any, as_of: datetime) -> None:
    """A day after the weekly ``order_rfm`` batch was missed, its values read back missing (stale), the
    profile (no freshness limit) stays fresh, and engagement, older than its limit too, is missing."""
    from nextbest.core.features import view

    later = as_of + timedelta(days=view("order_rfm").ttl_days + 1)  # one missed weekly batch and a day
    row = OnlineFeatureReader(store, "nba_v1").read_one(42, now=later.timestamp())
    assert row.view_status["customer_profile"] == "fresh"  # no freshness limit on the profile
    assert row.view_status["order_rfm"] == "stale" and "order_rfm" in row.stale_views
    assert row.values["orders_90d"] is None and row.values["days_since_last_order"] is None
    assert row.values["age"] is not None and row.values["tenure_days"] is not None
    assert all(row.values[f] is None for f in view("engagement").served_names)
