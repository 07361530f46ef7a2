"""The service's direct online read returns exactly what Feast's ``get_online_features(FeatureService)``
returns (values, types, event times, freshness), on the SQLite store, for fresh, stale, updated and unknown
customers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from nextbest.core.events import parse_event
from nextbest.core.features import view
from nextbest.features.events import EventWriter
from tests.support.online_reads import compare_read_paths


def test_direct_reads_equal_feast_reads(feature_store: Any, as_of: datetime) -> None:
    writer = EventWriter(feature_store)
    at = (as_of + timedelta(minutes=3)).isoformat()
    writer.push(parse_event({"timestamp": at, "type": "ticket_opened", "customer_id": 5, "ticket_id": 880_001,
                             "severity": 2}))  # fmt: skip
    writer.push(parse_event({"timestamp": at, "type": "cart_abandoned", "customer_id": 6, "cart_value": 59.0}))
    customers = [*range(1, 400), 10_000_000, 10_000_001]  # the last two are unknown
    stale = as_of + timedelta(days=view("order_rfm").ttl_days + 1)
    rows = compare_read_paths(feature_store, customers, [as_of.timestamp() + 600, stale.timestamp()])
    fresh = rows[: len(customers)]
    assert sum(r.complete for r in fresh) > 300 and not fresh[-1].found  # the comparison covers every case
    assert any(r.stale_views for r in rows[len(customers) :])
    assert fresh[4].values["open_tickets"] >= 1 and fresh[4].values["days_since_ticket_opened"] is not None
    assert fresh[5].values["hours_since_cart_abandoned"] is not None


def test_direct_reads_in_chunks_equal_feast_reads(
    feature_store: Any, as_of: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many customers at once are read in several queries (SQLite binds a limited number of values)."""
    from nextbest.features import online_store

    monkeypatch.setattr(online_store, "_MAX_SQL_VARIABLES", 50)  # 7 views: 7 customers per query
    customers = [*range(1_000, 1_060), 10_000_000]
    rows = compare_read_paths(feature_store, customers, [as_of.timestamp() + 600])
    assert sum(r.found for r in rows) == 60
