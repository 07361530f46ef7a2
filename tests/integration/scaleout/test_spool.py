"""The local spool shared by the workers of one service (one ``NEXTBEST_HOME``): processes appending while
another replays lose nothing and write nothing twice; a record that can never be written does not block the
ones behind it; a failure that may pass stops the replay and keeps the rest, in order."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from nextbest.errors import DataError, UnavailableError
from nextbest.serving.spool import Spool

APPENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from nextbest.serving.spool import Spool

    spool, worker, n = Spool(Path(sys.argv[1])), sys.argv[2], int(sys.argv[3])
    for i in range(n):
        spool.append("decisions", {"worker": worker, "i": i, "pad": "x" * 2000})
    """
)


def test_workers_appending_while_one_replays_lose_nothing(tmp_path: Path) -> None:
    spool, per_worker = Spool(tmp_path / "spool"), 150
    workers = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(spool.directory), str(w), str(per_worker)])
        for w in range(3)
    ]
    written: list[tuple[str, int]] = []
    while any(w.poll() is None for w in workers):
        spool.replay("decisions", lambda r: written.append((r["worker"], r["i"])))
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
