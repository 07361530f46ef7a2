"""Several processes applying events to the same customer at once, as workers and replicas do.

``race_ticket_events`` starts ``writers`` processes (``python -m tests.support.event_race``), each opening the
online store of the given settings and, from the same instant on, opening ``per_writer`` tickets of its own for
one customer, every event in the same second (so each one applies: none is older than the stored row).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nextbest.settings import Settings

PROJECT = Path(__file__).resolve().parents[2]


def open_tickets_after_a_race(
    store: Any, settings: Settings, customer: int, as_of: datetime, writers: int = 2, per_writer: int = 20
) -> tuple[int, int]:
    """The customer's open tickets after the race, and how many there should be (before + every ticket)."""
    from nextbest.features.online import OnlineFeatureReader

    reader = OnlineFeatureReader(store, "nba_v1")
    now = as_of.timestamp() + 3_600
    before = int(reader.read_one(customer, now).values["open_tickets"])
    race_ticket_events(settings, customer, as_of + timedelta(minutes=40), writers, per_writer)
    return int(reader.read_one(customer, now).values["open_tickets"]), before + writers * per_writer


def race_ticket_events(settings: Settings, customer: int, at: datetime, writers: int = 2, per_writer: int = 20) -> None:
    env = {
        **os.environ,
        "NEXTBEST_HOME": str(settings.home),
        "NEXTBEST_DATA_DIR": str(settings.data_dir),
        "NEXTBEST_PROJECT_DIR": str(settings.project_dir),
        "NEXTBEST_ENVIRONMENT": settings.environment,
        "NEXTBEST_REDIS_URL": settings.redis_url,
        "NEXTBEST_FEAST_PROJECT": settings.feast_project,
    }
    start = time.time() + 8.0  # every process has opened its store by then
    procs = []
    for w in range(writers):
        job = {"customer": customer, "at": at.isoformat(), "start": start, "first": 880_000 + w * 1_000}
        job["count"] = per_writer
        cmd = [sys.executable, "-m", "tests.support.event_race", json.dumps(job)]
        procs.append(subprocess.Popen(cmd, cwd=PROJECT, env=env, stderr=subprocess.PIPE))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]


def _write(job: dict[str, Any]) -> None:
    from nextbest.core.events import parse_event
    from nextbest.features.events import EventWriter
    from nextbest.features.store import open_store
    from nextbest.settings import load_settings

    writer = EventWriter(open_store(load_settings()))
    events = [
        parse_event({"type": "ticket_opened", "customer_id": job["customer"], "ticket_id": job["first"] + i,
                     "severity": 2, "timestamp": job["at"]})
        for i in range(job["count"])
    ]  # fmt: skip
    time.sleep(max(0.0, job["start"] - time.time()))
    for event in events:
        assert writer.push(event).outcome == "applied"


if __name__ == "__main__":
    _write(json.loads(sys.argv[1]))
