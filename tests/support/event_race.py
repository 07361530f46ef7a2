"""Several processes applying events to the same customer at once, as workers and replicas do.

``race_ticket_events`` starts ``writers`` processes (``python -m tests.support.event_race``), each opening the
online store of the given settings and then, all released together once every one is ready, opening
``per_writer`` tickets of its own for one customer, every event in the same second (so each one applies: none
is older than the stored row).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
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
    gate = Path(tempfile.mkdtemp(prefix="event-race-"))  # each writer says it is ready; all start on "go"
    procs = []
    for w in range(writers):
        job = {"customer": customer, "at": at.isoformat(), "gate": str(gate), "writer": w, "count": per_writer}
        cmd = [sys.executable, "-m", "tests.support.event_race", json.dumps(job)]
        procs.append(subprocess.Popen(cmd, cwd=PROJECT, env=env, stderr=subprocess.PIPE))
    deadline = time.monotonic() + 120
    while len(list(gate.glob("ready-*"))) < writers and all(p.poll() is None for p in procs):
        assert time.monotonic() < deadline, "the writers did not open their stores within 120 s"
        time.sleep(0.05)
    (gate / "go").touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]


def _write(job: dict[str, Any]) -> None:
    from nextbest.core.events import parse_event
    from nextbest.features.events import EventWriter
    from nextbest.features.store import open_store
    from nextbest.settings import load_settings

    writer = EventWriter(open_store(load_settings()))
    first = 880_000 + 1_000 * job["writer"]
    events = [
        parse_event({"type": "ticket_opened", "customer_id": job["customer"], "ticket_id": first + i,
                     "severity": 2, "timestamp": job["at"]})
        for i in range(job["count"])
    ]  # fmt: skip
    gate = Path(job["gate"])
    (gate / f"ready-{job['writer']}").touch()
    while not (gate / "go").exists():
        time.sleep(0.001)
    for event in events:
        assert writer.push(event).outcome == "applied"


if __name__ == "__main__":
    _write(json.loads(sys.argv[1]))
