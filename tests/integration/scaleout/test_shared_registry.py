"""Replicas sharing one Feast registry on PostgreSQL (``NEXTBEST_FEAST_REGISTRY_URL``): the batch host applies
and materializes, a replica with an empty home reads the same definitions and rows, with no registry file to
copy, and an event it pushes is visible from the batch host at once."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from nextbest.core.events import parse_event
from nextbest.features.events import EventWriter
from nextbest.features.online import OnlineFeatureReader
from nextbest.features.store import apply, materialize, open_store, repo_config
from nextbest.settings import Settings, load_settings
from tests.support.databases import scratch_database
from tests.support.redis_keys import delete_project_keys

PROJECT = Path(__file__).resolve().parents[3]


def test_replicas_read_the_definitions_the_batch_host_applied(
    postgres_url: str, redis_url: str, world_dir: Path, settings: Settings, tmp_path: Path, as_of: datetime
) -> None:
    project = f"nbtest_{uuid.uuid4().hex[:12]}"
    with scratch_database(postgres_url, "nbtest_feast") as registry:

        def host(name: str) -> Settings:
            return load_settings(
                home=tmp_path / name, data_dir=world_dir, project_dir=PROJECT, environment="redis",
                redis_url=redis_url, feast_project=project, feast_registry_url=registry,
                mlflow_tracking_uri=settings.mlflow_tracking_uri,
            )  # fmt: skip

        batch, replica = host("batch"), host("replica")
        assert repo_config(replica).registry.registry_type == "sql"
        try:
            apply(batch)
            materialize(batch, end=as_of)
            store = open_store(replica)
            reader = OnlineFeatureReader(store, "nba_v1")
            assert reader._direct is not None  # the replica resolved every view from the shared registry
            now = as_of.timestamp() + 600
            row = reader.read_one(17, now)
            assert row.found and row.complete
            batch_reader = OnlineFeatureReader(open_store(batch), "nba_v1")
            assert row.values == batch_reader.read_one(17, now).values
            event = {"type": "ticket_opened", "customer_id": 17, "ticket_id": 4_242, "severity": 2,
                     "timestamp": (as_of + timedelta(minutes=5)).isoformat()}  # fmt: skip
            assert EventWriter(store).push(parse_event(event)).outcome == "applied"
            assert batch_reader.read_one(17, now).values["open_tickets"] == row.values["open_tickets"] + 1
            assert not any(h.feast_dir.joinpath("registry.db").exists() for h in (batch, replica))
        finally:
            delete_project_keys(redis_url, project)
