"""The Feast repository with the Redis online store (``environment: redis``): materialized rows read back as on
SQLite, stale values come back missing, pushed events are visible at once, and an older write never replaces
a newer one, atomically, even from concurrent writers."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nextbest.core.events import parse_event
from nextbest.core.features import ENTITY, VIEWS, view
from nextbest.features.events import EventWriter
from nextbest.features.online import OnlineFeatureReader
from nextbest.features.store import open_store, repo_config
from nextbest.settings import Settings, load_settings
from tests.support.event_race import open_tickets_after_a_race
from tests.support.online_reads import assert_stale_after_a_missed_batch, compare_read_paths


def test_redis_environment_is_chosen_by_configuration(
    redis_settings: Settings, redis_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = repo_config(redis_settings)
    assert config.project == redis_settings.feast_project != "nextbest"
    assert config.online_store.type == "nextbest.features.online_store.MonotonicRedisOnlineStore"
    assert "socket_timeout=" in config.online_store.connection_string
    assert type(redis_store._get_provider().online_store).__name__ == "MonotonicRedisOnlineStore"
    # The same from the environment, as `nextbest serve` reads it.
    for name, value in {"ENVIRONMENT": "redis", "FEAST_PROJECT": "shop_b", "REDIS_URL": "redis://cache:6380/2"}.items():
        monkeypatch.setenv(f"NEXTBEST_{name}", value)
    from_env = repo_config(load_settings(home=redis_settings.home, project_dir=redis_settings.project_dir))
    assert from_env.project == "shop_b"
    assert from_env.online_store.connection_string.startswith("cache:6380,db=2,")
    assert (
        repo_config(redis_settings.model_copy(update={"environment": "local"})).project == redis_settings.feast_project
    )


def test_materialized_rows_read_back_from_redis(redis_store: Any, world_dir: Path, as_of: datetime) -> None:
    reader = OnlineFeatureReader(redis_store, "nba_v1")
    ids = [3, 17, 404, 2_500]  # customers no test here pushes events to
    rows = reader.read([*ids, 10_000_000], now=as_of.timestamp() + 60)
    unknown = rows.pop()
    assert not unknown.found and all(v is None for v in unknown.values.values())
    for spec in VIEWS:
        table = pd.read_parquet(world_dir / "feature_tables" / f"{spec.table}.parquet")
        latest = table.sort_values("event_timestamp").groupby(ENTITY).tail(1).set_index(ENTITY)
        for row in rows:
            assert row.view_status[spec.name] == "fresh"
            assert row.view_timestamps[spec.name] == int(latest.loc[row.customer_id, "event_timestamp"].timestamp())
            for name in spec.served_names:
                want, got = latest.loc[row.customer_id, name], row.values[name]
                assert (pd.isna(want) and got is None) or got == pytest.approx(want), (spec.name, name)
    assert all(row.complete and row.values["tenure_days"] is not None for row in rows)


def test_stale_values_come_back_missing_on_redis(redis_store: Any, as_of: datetime) -> None:
    assert_stale_after_a_missed_batch(redis_store, as_of)


def _event(as_of: datetime, seconds: float, **kw: Any) -> Any:
    return parse_event({"timestamp": (as_of + timedelta(seconds=seconds)).isoformat(), **kw})


def test_pushed_ticket_is_visible_at_once_and_late_events_do_not_overwrite(redis_store: Any, as_of: datetime) -> None:
    reader = OnlineFeatureReader(redis_store, "nba_v1")
    writer = EventWriter(redis_store)
    customer, now = 77, as_of.timestamp() + 900
    before = reader.read_one(customer, now=now)
    opened = writer.push(_event(as_of, 300, type="ticket_opened", customer_id=customer, ticket_id=990_001, severity=3))
    assert opened.outcome == "applied"
    after = reader.read_one(customer, now=now)
    assert after.values["open_tickets"] == before.values["open_tickets"] + 1
    assert after.values["max_open_severity"] == 3
    assert after.values["days_since_ticket_opened"] == pytest.approx(600 / 86_400, abs=1e-6)

    late = writer.push(_event(as_of, 120, type="ticket_closed", customer_id=customer, ticket_id=990_001))
    assert late.outcome == "ignored_older"
    assert reader.read_one(customer, now=now).values["open_tickets"] == after.values["open_tickets"]

    # Two events with the same event time: Feast's own Redis store keeps only the first; ours keeps both.
    second = writer.push(_event(as_of, 300, type="ticket_opened", customer_id=customer, ticket_id=990_002, severity=1))
    assert second.outcome == "applied"
    assert reader.read_one(customer, now=now).values["open_tickets"] == before.values["open_tickets"] + 2

    for ticket in (990_001, 990_002):
        closed = writer.push(_event(as_of, 540, type="ticket_closed", customer_id=customer, ticket_id=ticket))
        assert closed.outcome == "applied"
    assert reader.read_one(customer, now=now).values["open_tickets"] == before.values["open_tickets"]


def test_events_of_the_same_second_apply_in_arrival_order(redis_store: Any, as_of: datetime) -> None:
    """Event times count in whole seconds (the resolution they are read back at): a close stamped earlier in
    the same second as its open is applied, not reported applied and then refused by the store as older."""
    reader, writer, customer = OnlineFeatureReader(redis_store, "nba_v1"), EventWriter(redis_store), 95
    before = reader.read_one(customer, now=as_of.timestamp() + 900).values["open_tickets"]
    opened = _event(as_of, 600.7, type="ticket_opened", customer_id=customer, ticket_id=990_301, severity=2)
    closed = _event(as_of, 600.2, type="ticket_closed", customer_id=customer, ticket_id=990_301)
    assert writer.push(opened).outcome == "applied" and writer.push(closed).outcome == "applied"
    row = reader.read_one(customer, now=as_of.timestamp() + 900)
    assert row.values["open_tickets"] == before
    assert row.view_timestamps["service_tickets"] == int(as_of.timestamp()) + 600


def _consent_row(customer: int, at: datetime, opt_in: int) -> pd.DataFrame:
    return pd.DataFrame(
        [{ENTITY: customer, "event_timestamp": at, "email_opt_in": opt_in, "sms_opt_in": opt_in, "push_opt_in": 0}]
    )


def test_store_itself_refuses_older_writes(redis_store: Any, as_of: datetime) -> None:
    """A direct push (or a re-materialization of older batch data) cannot replace a newer row."""
    reader = OnlineFeatureReader(redis_store, "nba_v1")
    customer, now = 91, as_of.timestamp() + 3_600
    redis_store.push("consent_events", _consent_row(customer, as_of + timedelta(minutes=30), 1))
    redis_store.push("consent_events", _consent_row(customer, as_of - timedelta(days=1), 0))
    row = reader.read_one(customer, now=now)
    assert row.values["sms_opt_in"] == 1
    assert row.view_timestamps["consents"] == int((as_of + timedelta(minutes=30)).timestamp())
    redis_store.push("consent_events", _consent_row(customer, as_of + timedelta(minutes=30), 0))  # same time: kept
    assert reader.read_one(customer, now=now).values["sms_opt_in"] == 0


def test_concurrent_writers_never_let_an_older_row_win(redis_settings: Settings, as_of: datetime) -> None:
    """Replicas writing the same customers at once, rows in random event-time order: the newest row stays.
    Feast's own store reads the stored time and writes in two round trips: in a trial like this one (four
    writers, 40 rows per customer) it left an older row stored for 2 customers of 30."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    stores = [open_store(redis_settings) for _ in range(4)]  # one Redis client each, like replicas
    table = stores[0].get_feature_view("consents")
    customers = range(2_900, 2_920)
    keys = {c: EntityKey(join_keys=[ENTITY]) for c in customers}
    for c, key in keys.items():
        key.entity_values.add().int64_val = c
    stamps = [as_of + timedelta(seconds=i) for i in range(1, 21)]
    orders = [random.Random(c).sample(stamps, len(stamps)) for c in customers]
    errors: list[BaseException] = []

    def write(store: Any, part: int) -> None:
        provider = store._get_provider()
        try:
            for c, order in zip(customers, orders, strict=True):
                for at in order[part :: len(stores)]:
                    value = Value(int64_val=int(at.timestamp()) % 2)
                    provider.online_write_batch(
                        store.config, table, [(keys[c], {"email_opt_in": value}, at, None)], None
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    provider = stores[0]._get_provider()
    stored = provider.online_read(stores[0].config, table, list(keys.values()), ["email_opt_in"])
    newest = max(stamps)
    assert [ts for ts, _ in stored] == [newest] * len(keys)
    assert {values["email_opt_in"].int64_val for _, values in stored} == {int(newest.timestamp()) % 2}


def test_direct_reads_equal_feast_reads_on_redis(redis_store: Any, as_of: datetime) -> None:
    """The service's read (all views in one pipelined round trip) returns what Feast's generic path returns."""
    customers = [*range(1, 300), 10_000_000]
    stale = as_of + timedelta(days=view("order_rfm").ttl_days + 1)
    rows = compare_read_paths(redis_store, customers, [as_of.timestamp() + 600, stale.timestamp()])
    assert sum(r.complete for r in rows) > 250 and not rows[len(customers) - 1].found
    assert any(r.stale_views for r in rows[len(customers) :])


def test_an_acl_user_with_a_password_reads_and_a_wrong_password_is_refused(
    redis_settings: Settings, redis_store: Any, redis_url: str, as_of: datetime
) -> None:
    """``NEXTBEST_REDIS_URL`` with ``user:password@`` (percent-encoded) reaches Feast's Redis client: a Redis ACL
    user of this test reads what the default user reads; a wrong password is refused, never ignored."""
    import uuid
    from urllib.parse import quote, urlsplit

    import redis

    admin = redis.Redis.from_url(redis_url)
    user, password = f"nbtest_{uuid.uuid4().hex[:8]}", f"p@ss:w/rd {uuid.uuid4().hex[:6]}"
    admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"])
    parts = urlsplit(redis_url)

    def reader(secret: str) -> OnlineFeatureReader:
        url = f"redis://{user}:{quote(secret, safe='')}@{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        settings = load_settings(
            home=redis_settings.home, data_dir=redis_settings.data_dir, project_dir=redis_settings.project_dir,
            environment="redis", redis_url=url, feast_project=redis_settings.feast_project,
            mlflow_tracking_uri=redis_settings.mlflow_tracking_uri,
        )  # fmt: skip
        return OnlineFeatureReader(open_store(settings), "nba_v1")

    try:
        now = as_of.timestamp() + 60
        row = reader(password).read_one(17, now)
        assert row.found and row.complete
        assert row.values == OnlineFeatureReader(redis_store, "nba_v1").read_one(17, now).values
        with pytest.raises(redis.AuthenticationError):
            reader(password + "x").read_one(17, now)
    finally:
        admin.acl_deluser(user)
        admin.close()


def test_events_for_one_customer_from_two_replicas_lose_nothing(
    redis_settings: Settings, redis_store: Any, as_of: datetime
) -> None:
    """Two replicas (processes sharing only Redis) opening tickets for the same customer at the same moment:
    every ticket is kept (the row is read, changed and written under a Redis lock of that row)."""
    got, expected = open_tickets_after_a_race(redis_store, redis_settings, 321, as_of)
    assert got == expected
