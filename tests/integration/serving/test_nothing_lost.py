"""Nothing lost, nothing counted twice (over HTTP, the app of the service in process, on the session world's
champion): a PostgreSQL log that goes away mid-traffic spools decisions and feedback and replays them in
order when it is back; a full disk (a real, tiny tmpfs holding the SQLite log and the spool) serves
unrecorded decisions as the control action, flagged ``logged: false``, and refuses events and feedback with a
503 instead of a 500."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient

from nextbest.serving.app import create_app
from nextbest.serving.runtime import UNRECORDED, DecisionRuntime, build_runtime
from nextbest.serving.spool import Spool
from nextbest.settings import Settings
from tests.support.tcp_proxy import TcpProxy


def _client(runtime: DecisionRuntime) -> TestClient:
    app = create_app()
    app.state.runtime = runtime
    return TestClient(app)


def _decide(client: TestClient, customer_id: int) -> dict[str, Any]:
    r = client.post("/decide", json={"customer_id": customer_id, "channel": "any"})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def pg_runtime(
    settings: Settings, champion: Any, postgres_log_url: str, postgres_proxy: TcpProxy, tmp_path: Path
) -> Iterator[DecisionRuntime]:
    parts = urlsplit(postgres_log_url)
    url = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{postgres_proxy.port}"))
    runtime = build_runtime(settings.model_copy(update={"decision_log_url": url}))
    runtime.spool = Spool(tmp_path / "spool")  # this test's own: the session's runtimes share NEXTBEST_HOME
    yield runtime
    runtime.backends.log.close()


def test_a_log_outage_loses_no_decision_and_counts_no_feedback_twice(
    pg_runtime: DecisionRuntime, postgres_proxy: TcpProxy
) -> None:
    client, log = _client(pg_runtime), pg_runtime.backends.log
    before = _decide(client, 21)
    assert before["logged"] and log.get(before["decision_id"]) is not None

    postgres_proxy.stop()  # the log is gone: connections refused, open ones cut
    during = _decide(client, 22)
    assert during["logged"] and not during["degraded"]  # spooled: served as decided, logged when the log is back
    conversion = {"decision_id": during["decision_id"], "type": "conversion", "revenue": 30.0}
    first = client.post("/feedback", json=conversion)
    assert first.status_code == 200, first.text
    assert first.json()["queued"] is True and first.json()["recorded"] is False
    retry = client.post("/feedback", json=conversion)  # a retry without feedback_id: the same feedback
    assert retry.json()["feedback_id"] == first.json()["feedback_id"]
    batch = client.post(
        "/feedback/batch",
        json={"items": [{"decision_id": before["decision_id"], "type": "impression"},
                        {"decision_id": during["decision_id"], "type": "click"}]},
    )  # fmt: skip
    assert batch.status_code == 200, batch.text
    assert [(r["queued"], r["error"]) for r in batch.json()["results"]] == [(True, None), (True, None)]
    ready = client.get("/ready").json()
    assert ready["details"]["spooled"] == {"decisions": 1, "feedback": 4, "events": 0}
    assert not ready["details"]["decision_log"]

    assert pg_runtime.replay_spool()["decisions"] == 0  # still down: everything stays, in order
    postgres_proxy.start()
    replayed = _drain(pg_runtime)
    assert replayed["decisions"] == 1 and replayed["feedback"] == 4  # the retry is a no-op in the log
    assert pg_runtime.spool.pending("decisions") == pg_runtime.spool.pending("feedback") == 0
    stored = log.get(during["decision_id"])
    assert stored is not None and stored.response["action"] == during["action"]
    rows = {r["decision_id"]: r for r in log.training_rows(since=0)}
    assert rows[during["decision_id"]]["revenue"] == 30.0  # counted once
    assert rows[during["decision_id"]]["feedback_count"] == 2  # the conversion and the click
    assert rows[before["decision_id"]]["impressed"] == 1


def test_queued_feedback_on_an_unknown_decision_is_set_aside_at_replay(
    pg_runtime: DecisionRuntime, postgres_proxy: TcpProxy
) -> None:
    client = _client(pg_runtime)
    postgres_proxy.stop()
    r = client.post("/feedback", json={"decision_id": "never-decided", "type": "click"})
    assert r.status_code == 200 and r.json()["queued"]
    postgres_proxy.start()
    assert _drain(pg_runtime)["feedback"] == 0
    assert pg_runtime.spool.pending("feedback") == 0
    rejected = (pg_runtime.spool.directory / "feedback.rejected.jsonl").read_text()
    assert "never-decided" in rejected
    # With the log up, the same feedback is a 404 at once
    assert client.post("/feedback", json={"decision_id": "never-decided", "type": "click"}).status_code == 404


def _drain(runtime: DecisionRuntime) -> dict[str, int]:
    """What the service's replay thread does: drain the spool, retrying while the log reconnects (it waits a
    second after a failed connection before trying again)."""
    total = {"decisions": 0, "feedback": 0, "events": 0}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for kind, n in runtime.drain_spool().items():
            total[kind] += n
        if not any(runtime.spool.has_pending(k) for k in total):
            break
        time.sleep(0.2)
    return total


def _fill(disk: Path) -> Path:
    """Write until the file system is full; returns the file to delete to free it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_serves_unrecorded_control_decisions_and_refuses_writes_with_503(
    settings: Settings, champion: Any, small_disk: Path
) -> None:
    log_url = f"sqlite:///{small_disk / 'decisions.db'}"
    runtime = build_runtime(settings.model_copy(update={"decision_log_url": log_url}))
    runtime.spool = Spool(small_disk / "spool")
    client = _client(runtime)
    ok = _decide(client, 31)
    assert ok["logged"]

    filler = _fill(small_disk)
    unrecorded = [_decide(client, 32) for _ in range(5)]  # the WAL may still hold a page or two: keep deciding
    refused = [d for d in unrecorded if not d["logged"]]
    assert refused, "the full disk never refused a write"
    for d in refused:
        assert d["degraded"] and d["reason"] == UNRECORDED and d["action"] == runtime.components.policy.catalog.control
        assert runtime.backends.log.get(d["decision_id"]) is None
    fb = client.post("/feedback", json={"decision_id": ok["decision_id"], "type": "click", "feedback_id": "f-full"})
    assert fb.status_code == 503 and "spool" in fb.json()["error"], fb.text
    runtime.backends.events, runtime.backends.features_error = None, "closed for this test"  # the store is down too
    event = {"type": "cart_abandoned", "customer_id": 31, "timestamp": datetime.now(UTC).isoformat(), "cart_value": 9}
    ev = client.post("/events", json=event)
    assert ev.status_code == 503 and ev.headers["content-type"] == "application/json", ev.text
    assert "spool" in ev.json()["error"]

    filler.unlink()  # space again: decisions are recorded, the refused feedback's retry is accepted
    again = _decide(client, 32)
    assert again["logged"] and runtime.backends.log.get(again["decision_id"]) is not None
    fb = client.post("/feedback", json={"decision_id": ok["decision_id"], "type": "click", "feedback_id": "f-full"})
    assert fb.status_code == 200 and fb.json()["recorded"], fb.text
    runtime.backends.log.close()


def test_ready_warns_before_the_spool_is_full(runtime: DecisionRuntime, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=65_536)
    for n in range(60):
        spool.append("decisions", {"n": n, "pad": "x" * 1000})
    saved, runtime.spool = runtime.spool, spool
    try:
        ready = runtime.readiness()
    finally:
        runtime.spool = saved
    assert any(p.startswith("local spool at 9") for p in ready.degraded), ready.degraded
    assert ready.details["spooled"]["decisions"] == 60


@pytest.fixture(scope="module")
def runtime(settings: Settings, champion: Any, tmp_path_factory: pytest.TempPathFactory) -> DecisionRuntime:
    log = tmp_path_factory.mktemp("nothing-lost") / "decisions.db"
    return build_runtime(settings.model_copy(update={"decision_log_url": f"sqlite:///{log}"}))
