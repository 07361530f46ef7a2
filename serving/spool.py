"""A local append-only spool for records whose backend is down (decision log, feedback, online store).

Losing a decision, a feedback or an event is worse than storing it late: when a write fails the record goes to
a JSON Lines file under ``NEXTBEST_HOME/spool`` (the file and, when it creates or removes files, the directory
fsync'ed), and :meth:`Spool.replay` writes it to the backend later, in order, removing only what was written.

Layout, per kind: records are appended to ``<kind>.jsonl``; when it reaches ``segment_bytes`` it is sealed as
``<kind>.seg-<ns>-<count>.jsonl`` (time-ordered, with its record count in the name) and a new one begins.
Replay takes the oldest file first and at most ``limit`` records per call, so one call reads one segment or
so, never the whole spool, and counting what is pending reads only the newest segment.

The spool is capped (``max_bytes`` over all kinds): an append beyond it raises :class:`SpoolFullError`, and
the caller reports the record as not stored (a decision is served ``logged: false``, an event or a feedback
is a 503) instead of filling the disk the decision log lives on.

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
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nextbest.errors import DataError, NotFoundError

log = logging.getLogger(__name__)

#: Errors that writing the same record again cannot fix; anything else (unreachable, timeout) is retried later.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (DataError, NotFoundError, ValueError, TypeError, KeyError)
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_SEGMENT_BYTES = 1 << 20
_SEGMENT = re.compile(r"\.seg-(\d{20})-(\d+)\.jsonl$")


class SpoolFullError(OSError):
    """The spool reached its size cap: the record was not stored."""


class Spool:
    def __init__(
        self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()

    def _file(self, kind: str) -> Path:
        return self.directory / f"{kind}.jsonl"

    def _segments(self, kind: str) -> list[Path]:
        """Sealed segments of ``kind``, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob(f"{kind}.seg-*.jsonl"), key=lambda p: p.name)

    def _files(self, kind: str) -> list[Path]:
        """Every file holding ``kind`` records, in replay order: sealed segments, then the open one."""
        active = self._file(kind)
        return [*self._segments(kind), *([active] if active.is_file() else [])]

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
        """Store ``record`` durably; raises :class:`SpoolFullError` at the cap, or the ``OSError`` of a full
        disk or an unwritable directory."""
        data = (json.dumps(record, default=str) + "\n").encode("utf-8")
        with self._locked(kind):
            used = self.size()
            if used + len(data) > self.max_bytes:
                raise SpoolFullError(
                    f"local spool full ({used:,} of {self.max_bytes:,} bytes): {kind} record not stored"
                )
            active = self._file(kind)
            created = not active.is_file()
            if not created and active.stat().st_size >= self.segment_bytes:
                self._seal(kind, active)
                created = True
            _append(active, data)
            if created:
                _fsync_dir(self.directory)

    def _seal(self, kind: str, active: Path) -> None:
        count = _count_lines(active)
        active.rename(self.directory / f"{kind}.seg-{time.time_ns():020d}-{count}.jsonl")

    def pending(self, kind: str) -> int:
        """Records of ``kind`` waiting (reads the open segment only)."""
        sealed = sum(int(m.group(2)) for p in self._segments(kind) if (m := _SEGMENT.search(p.name)))
        active = self._file(kind)
        return sealed + (_count_lines(active) if active.is_file() else 0)

    def has_pending(self, kind: str) -> bool:
        """Cheap: whether any record of ``kind`` waits (file sizes only)."""
        return any(_size(p) > 0 for p in self._files(kind))

    def size(self) -> int:
        """Bytes held for replay, over every kind (set-aside records excluded)."""
        if not self.directory.is_dir():
            return 0
        return sum(_size(p) for p in self.directory.glob("*.jsonl") if not p.name.endswith(".rejected.jsonl"))

    def replay(self, kind: str, write: Callable[[dict[str, Any]], object], limit: int | None = None) -> int:
        """Write spooled records in order, at most ``limit`` of them (all when None); stops at the first
        failure that may pass (the backend is still down) and keeps the rest. Returns how many were written."""
        if not self._files(kind):
            return 0
        budget = float("inf") if limit is None else int(limit)
        written = 0
        with self._locked(kind):
            for path in self._files(kind):
                if budget <= 0:  # the batch is done: the next file waits for the next call, untouched
                    break
                lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                done, stopped = 0, False
                for line in lines:
                    if budget <= 0:
                        stopped = True
                        break
                    try:
                        write(json.loads(line))
                    except PERMANENT_ERRORS as exc:
                        log.error("spool %s: record cannot be written, moved to %s.rejected: %s", kind, kind, exc)
                        _append(self.directory / f"{kind}.rejected.jsonl", (line + "\n").encode("utf-8"))
                    except Exception as exc:
                        log.info("spool %s: %d written, stopped at: %s", kind, written, exc)
                        stopped = True
                        break
                    else:
                        written += 1
                    done += 1
                    budget -= 1
                if done or not lines:  # nothing consumed (the backend is still down): the file stays as it is
                    self._keep(kind, path, lines[done:])
                if stopped:
                    break
        return written

    def _keep(self, kind: str, path: Path, rest: list[str]) -> None:
        """Replace ``path`` by the records not yet written (its name keeps its place in the order)."""
        if not rest:
            path.unlink()
        else:
            match = _SEGMENT.search(path.name)
            target = path if match is None else path.with_name(f"{kind}.seg-{match.group(1)}-{len(rest)}.jsonl")
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as out:
                out.write("".join(line + "\n" for line in rest).encode("utf-8"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
            if target != path:
                path.unlink()
        _fsync_dir(self.directory)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # replayed by another worker meanwhile
        return 0


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    except FileNotFoundError:
        return 0


def _append(path: Path, data: bytes) -> None:
    """Append one line, durably; a torn last line (a process died mid-write) is ended first, not joined. On a
    full disk nothing of the line stays behind (no torn record to set aside later)."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make file creation, renames and removals in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
