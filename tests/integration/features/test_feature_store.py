"""The Feast repository on a temp store: point-in-time correctness, online reads, real-time events,
freshness. Uses the session's small world (3,000 customers) applied and materialized into SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.core.events import parse_event
from nextbest.core.features import ENTITY, REQUEST_TS, VIEWS, model_features, service_features
from nextbest.features.events import EventWriter
from nextbest.features.online import OnlineFeatureReader
from nextbest.settings import Settings
from nextbest.world.outcome import true_response
from tests.support.event_race import open_tickets_after_a_race
from tests.support.online_reads import assert_stale_after_a_missed_batch


def unix_seconds(ts: pd.Series) -> pd.Series:
    return (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def _historical(store: Any, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time features for the world's (integer) customer ids, which the feature store keys by their
    canonical text: asked for as strings, returned with the world's integers again."""
    service = store.get_feature_service("nba_v1")
    entity = entity_df.astype({ENTITY: str})
    return store.get_historical_features(entity_df=entity, features=service).to_df().astype({ENTITY: np.int64})


def test_point_in_time_join_never_uses_later_rows(feature_store: Any, world_dir: Path) -> None:
    log = pd.read_parquet(world_dir / "raw" / "campaign_log.parquet").sample(800, random_state=0)
    entity = log[[ENTITY, "event_timestamp"]].assign(**{REQUEST_TS: unix_seconds(log["event_timestamp"])})
    got = _historical(feature_store, entity).set_index([ENTITY, "event_timestamp"]).sort_index()
    assert len(got) == len(entity)  # DuckDB keeps every entity row (the file store would drop some)
    for spec in VIEWS:
        table = pd.read_parquet(world_dir / "feature_tables" / f"{spec.table}.parquet").astype({ENTITY: np.int64})
        expected = (
            pd.merge_asof(
                entity.sort_values("event_timestamp"),
                table.sort_values("event_timestamp").rename(columns={"event_timestamp": "row_ts"}),
                left_on="event_timestamp",
                right_on="row_ts",
                by=ENTITY,
                direction="backward",
            )
            .set_index([ENTITY, "event_timestamp"])
            .sort_index()
        )
        assert (expected["row_ts"] <= expected.index.get_level_values("event_timestamp")).all()
        for name in spec.served_names:
            a, b = got[name], expected[name]
            same = (a == b) | (a.isna() & b.isna())
            if a.dtype.kind == "f" or b.dtype.kind == "f":
                same |= np.isclose(a.astype(float), b.astype(float), equal_nan=True)
            assert same.all(), f"{spec.name}.{name} differs from the last row at or before the entity time"


def test_historical_features_reproduce_the_ground_truth(
    feature_store: Any, world_dir: Path, catalog: ActionCatalog
) -> None:
    """The true response recomputed from point-in-time features equals the generator's: any leaked
    post-decision row (the campaign's own conversion order, its contact) would change it."""
    log = pd.read_parquet(world_dir / "raw" / "campaign_log.parquet")
    truth = pd.read_parquet(world_dir / "truth" / "campaign.parquet").set_index([ENTITY, "event_timestamp"])
    entity = log[[ENTITY, "event_timestamp"]].assign(**{REQUEST_TS: unix_seconds(log["event_timestamp"])})
    feats = _historical(feature_store, entity)
    state = {c: feats[c].to_numpy(dtype=float if feats[c].dtype.kind in "iuf" else object) for c in feats.columns}
    recomputed = true_response(state, catalog)
    expected = truth.loc[list(zip(feats[ENTITY], feats["event_timestamp"], strict=True))]
    np.testing.assert_allclose(recomputed.p_convert, expected[[f"p_{a}" for a in catalog.ids]].to_numpy(), atol=1e-9)


def test_online_reads_return_materialized_values(feature_store: Any, world_dir: Path, as_of: datetime) -> None:
    reader = OnlineFeatureReader(feature_store, "nba_v1")
    ids = [3, 17, 2_500]
    rows = reader.read(ids, now=as_of.timestamp() + 60)
    for spec in VIEWS:
        table = pd.read_parquet(world_dir / "feature_tables" / f"{spec.table}.parquet")
        latest = table.sort_values("event_timestamp").groupby(ENTITY).tail(1).set_index(ENTITY)
        for row in rows:
            assert row.view_status[spec.name] == "fresh"
            for name in spec.served_names:
                want = latest.loc[row.customer_id, name]
                got = row.values[name]
                assert (pd.isna(want) and got is None) or got == pytest.approx(want), (spec.name, name)
    assert set(rows[0].values) == set(service_features("nba_v1"))
    assert rows[0].values["tenure_days"] is not None


def test_unknown_customer_reads_as_not_found(feature_store: Any) -> None:
    row = OnlineFeatureReader(feature_store, "nba_v1").read_one(10_000_000)
    assert not row.found and all(v is None for v in row.values.values())


def test_stale_values_come_back_missing(feature_store: Any, as_of: datetime) -> None:
    assert_stale_after_a_missed_batch(feature_store, as_of)


def _event(as_of: datetime, minutes: int, **kw: Any) -> Any:
    return parse_event({"timestamp": (as_of + timedelta(minutes=minutes)).isoformat(), **kw})


def test_pushed_ticket_is_visible_at_once_and_late_events_do_not_overwrite(feature_store: Any, as_of: datetime) -> None:
    reader = OnlineFeatureReader(feature_store, "nba_v1")
    writer = EventWriter(feature_store)
    customer = 77
    before = reader.read_one(customer, now=as_of.timestamp() + 600)
    opened = writer.push(_event(as_of, 5, type="ticket_opened", customer_id=customer, ticket_id=990_001, severity=3))
    assert opened.outcome == "applied"
    after = reader.read_one(customer, now=as_of.timestamp() + 600)
    assert after.values["open_tickets"] == before.values["open_tickets"] + 1
    assert after.values["max_open_severity"] == 3
    assert after.values["days_since_ticket_opened"] == pytest.approx(5 / 1440, abs=1e-6)

    late = writer.push(_event(as_of, 2, type="ticket_closed", customer_id=customer, ticket_id=990_001))
    assert late.outcome == "ignored_older"
    assert reader.read_one(customer, now=as_of.timestamp() + 600).values["open_tickets"] == after.values["open_tickets"]

    closed = writer.push(_event(as_of, 9, type="ticket_closed", customer_id=customer, ticket_id=990_001))
    assert closed.outcome == "applied"
    final = reader.read_one(customer, now=as_of.timestamp() + 600)
    assert final.values["open_tickets"] == before.values["open_tickets"]


def test_store_itself_refuses_older_writes(feature_store: Any, as_of: datetime) -> None:
    """Even a direct push (or a re-materialization of older batch data) cannot replace a newer row."""
    reader = OnlineFeatureReader(feature_store, "nba_v1")
    writer = EventWriter(feature_store)
    customer = 91
    writer.push(_event(as_of, 30, type="consent_changed", customer_id=customer, channel="sms", opt_in=True))
    old = pd.DataFrame(
        [
            {
                ENTITY: customer,
                "event_timestamp": as_of - timedelta(days=1),
                "email_opt_in": 0,
                "sms_opt_in": 0,
                "push_opt_in": 0,
            }
        ]
    )
    feature_store.push("consent_events", old)
    assert reader.read_one(customer, now=as_of.timestamp() + 3_600).values["sms_opt_in"] == 1


def test_model_features_are_all_served(feature_store: Any) -> None:
    service = feature_store.get_feature_service("nba_v1")
    served = {f.name for p in service.feature_view_projections for f in p.features}
    assert set(model_features()) <= served


def test_events_for_one_customer_from_several_processes_lose_nothing(
    feature_store: Any, settings: Settings, as_of: datetime
) -> None:
    """Two workers opening tickets for the same customer at the same moment: every ticket is kept (each event
    reads, changes and writes the row under the store's entity lock; without it one write would start from a
    state that misses the other's ticket)."""
    got, expected = open_tickets_after_a_race(feature_store, settings, 123, as_of)
    assert got == expected
