"""The local spool shared by the workers of one service (one ``NEXTBEST_HOME``): processes appending while
another replays lose nothing and write nothing twice; a record that can never be written does not block the
ones behind it; a failure that may pass stops the replay and keeps the rest, in order."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nextbest.errors import DataError, UnavailableError
from nextbest.serving.spool import Spool, SpoolFullError

APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from nextbest.serving.spool import Spool

    spool, worker, n = Spool(Path(sys.argv[1]), segment_bytes=int(sys.argv[4])), sys.argv[2], int(sys.argv[3])
    for i in range(n):
        spool.append("decisions", {"worker": worker, "i": i, "pad": "x" * 2000})
    """
)


@pytest.mark.parametrize("segment", [1 << 20, 9_000])  # one file; a new segment every few records
def test_workers_appending_while_one_replays_lose_nothing(tmp_path: Path, segment: int) -> None:
    spool, per_worker = Spool(tmp_path / "spool", segment_bytes=segment), 150
    workers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(spool.directory), str(w), str(per_worker), str(segment)])
        for w in range(3)
    ]
    written: list[tuple[str, int]] = []
    while any(w.poll() is None for w in workers):
        spool.replay("decisions", lambda r: written.append((r["worker"], r["i"])), limit=40)
    assert all(w.wait() == 0 for w in workers)
    spool.replay("decisions", lambda r: written.append((r["worker"], r["i"])))
    assert len(written) == len(set(written)) == 3 * per_worker
    for w in map(str, range(3)):  # each worker's records in the order it appended them
        assert [i for worker, i in written if worker == w] == list(range(per_worker))
    assert spool.pending("decisions") == 0


def test_bad_records_are_set_aside_and_outages_keep_the_rest(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append("events", {"n": 1})
    with (spool.directory / "events.jsonl").open("a") as f:
        f.write('{"n": 2, "torn')  # a worker died in the middle of a write
    for n in (3, 4, 5, 6):
        spool.append("events", {"n": n})
    assert spool.pending("events") == 6

    seen: list[int] = []

    def write(record: dict[str, Any]) -> None:
        if record["n"] == 3:
            raise DataError("events: not a valid event")  # can never be written
        if record["n"] == 5 and not seen.count(-5):
            seen.append(-5)
            raise UnavailableError("online store unavailable")  # may pass: stop here, keep the rest
        seen.append(record["n"])

    assert spool.replay("events", write) == 2  # 1 and 4 written, the torn line and 3 set aside, stops at 5
    assert spool.pending("events") == 2
    assert spool.replay("events", write) == 2
    assert [n for n in seen if n > 0] == [1, 4, 5, 6] and spool.pending("events") == 0
    rejected = (spool.directory / "events.rejected.jsonl").read_text().splitlines()
    assert rejected[0].startswith('{"n": 2, "torn') and json.loads(rejected[1]) == {"n": 3}


@pytest.mark.parametrize("kind", ["decisions", "events"])
def test_replay_of_an_empty_spool_is_a_no_op(tmp_path: Path, kind: str) -> None:
    spool = Spool(tmp_path / "missing")
    assert spool.replay(kind, lambda r: None) == 0 and spool.pending(kind) == 0
    assert not spool.directory.exists()


def test_segments_keep_the_order_and_replay_reads_one_batch_at_a_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", segment_bytes=600)
    for n in range(100):
        spool.append("events", {"n": n, "pad": "x" * 40})
    segments = sorted(spool.directory.glob("events.seg-*.jsonl"))
    assert len(segments) >= 8  # sealed at ~600 bytes each, the newest still open
    assert spool.pending("events") == 100 and spool.has_pending("events")

    seen: list[int] = []
    assert spool.replay("events", lambda r: seen.append(r["n"]), limit=7) == 7
    assert spool.pending("events") == 93  # a partly replayed segment keeps its place, with its new count
    while spool.replay("events", lambda r: seen.append(r["n"]), limit=13):
        pass
    assert seen == list(range(100)) and spool.pending("events") == 0 and not spool.has_pending("events")
    assert not list(spool.directory.glob("events*.jsonl"))


def test_the_cap_refuses_records_and_stores_nothing_of_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=2_000)
    for n in range(10):
        spool.append("decisions", {"n": n, "pad": "x" * 180})  # 200 bytes each
    with pytest.raises(SpoolFullError, match="local spool full"):
        spool.append("feedback", {"pad": "x" * 150})  # the cap is over every kind
    assert spool.size() <= 2_000 and spool.pending("decisions") == 10 and spool.pending("feedback") == 0
    spool.replay("decisions", lambda r: None)
    spool.append("feedback", {"pad": "x" * 150})  # room again once replayed
    assert spool.pending("feedback") == 1


def test_a_full_disk_refuses_the_record_and_leaves_no_torn_line(small_disk: Path) -> None:
    """A real full file system (a 1 MiB tmpfs): the append fails with ENOSPC, and what was stored stays whole."""
    spool = Spool(small_disk / "spool")
    stored = 0
    with pytest.raises(OSError) as refused:
        while True:
            spool.append("events", {"n": stored, "pad": "x" * 1000})
            stored += 1
    assert refused.value.errno == errno.ENOSPC and not isinstance(refused.value, SpoolFullError)
    assert stored > 10 and spool.pending("events") == stored
    seen: list[int] = []
    assert spool.replay("events", lambda r: seen.append(r["n"])) == stored  # no torn line set aside
    assert seen == list(range(stored)) and not (spool.directory / "events.rejected.jsonl").exists()


def test_a_replay_that_writes_nothing_leaves_the_files_alone(tmp_path: Path) -> None:
    """During an outage the replay thread tries every second: it must not rewrite the spool each time."""
    spool = Spool(tmp_path / "spool")
    for n in range(5):
        spool.append("decisions", {"n": n})
    path = spool.directory / "decisions.jsonl"
    before = (path.stat().st_ino, path.stat().st_mtime_ns)

    def down(_: dict[str, Any]) -> None:
        raise UnavailableError("decision log unreachable")

    assert spool.replay("decisions", down, limit=3) == 0
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == before and spool.pending("decisions") == 5
