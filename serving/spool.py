"""A local append-only spool for records whose backend is down (decision log, online store).

Losing a decision or an event is worse than storing it late: when a write fails the record goes to a JSON
Lines file under ``NEXTBEST_HOME/spool`` (fsync'ed), and :meth:`Spool.replay` writes it to the backend later,
in order, removing only what was written.

Several processes share one spool (the workers of a service share ``NEXTBEST_HOME``), so every append and
replay holds an exclusive ``flock`` on the kind's lock file: a worker replaying never drops a record another
worker appended meanwhile. A record that can never be written (a torn line from a crash, an invalid record)
moves to ``<kind>.rejected.jsonl`` instead of blocking every record behind it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nextbest.errors import DataError

log = logging.getLogger(__name__)

#: Errors that writing the same record again cannot fix; anything else (unreachable, timeout) is retried later.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (DataError, ValueError, TypeError, KeyError)


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def _file(self, kind: str) -> Path:
        return self.directory / f"{kind}.jsonl"

    @contextmanager
    def _locked(self, kind: str) -> Iterator[None]:
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / f"{kind}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def append(self, kind: str, record: dict[str, Any]) -> None:
        data = (json.dumps(record, default=str) + "\n").encode("utf-8")
        with self._locked(kind):
            _append(self._file(kind), data)

    def pending(self, kind: str) -> int:
        path = self._file(kind)
        if not path.is_file():
            return 0
        with path.open(encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())

    def replay(self, kind: str, write: Callable[[dict[str, Any]], object]) -> int:
        """Write spooled records in order; stops at the first failure that may pass (the backend is still
        down) and keeps the rest. Returns how many records were written."""
        path = self._file(kind)
        if not path.is_file():
            return 0
        with self._locked(kind):
            if not path.is_file():
                return 0
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            done = written = 0
            for line in lines:
                try:
                    write(json.loads(line))
                except PERMANENT_ERRORS as exc:
                    log.error("spool %s: record cannot be written, moved to %s.rejected: %s", kind, kind, exc)
                    _append(self.directory / f"{kind}.rejected.jsonl", (line + "\n").encode("utf-8"))
                except Exception as exc:
                    log.info("spool %s: %d written, stopped at: %s", kind, written, exc)
                    break
                else:
                    written += 1
                done += 1
            rest = lines[done:]
            if rest:
                tmp = path.with_suffix(".tmp")
                tmp.write_text("".join(line + "\n" for line in rest), encoding="utf-8")
                os.replace(tmp, path)
            else:
                path.unlink()
            return written


def _append(path: Path, data: bytes) -> None:
    """Append one line, durably; a torn last line (a process died mid-write) is ended first, not joined."""
    with path.open("a+b") as out:
        size = out.seek(0, os.SEEK_END)
        if size:
            out.seek(size - 1)
            if out.read(1) != b"\n":
                data = b"\n" + data
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
