"""A local append-only spool for records whose backend is down (decision log, online store).

Losing a decision or an event is worse than storing it late: when a write fails the record goes to a JSON
Lines file under ``NEXTBEST_HOME/spool`` (fsync'ed), and :meth:`Spool.replay` writes it to the backend later,
in order, removing only what was written.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def _file(self, kind: str) -> Path:
        return self.directory / f"{kind}.jsonl"

    def append(self, kind: str, record: dict[str, Any]) -> None:
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._file(kind).open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, default=str) + "\n")
                out.flush()
                os.fsync(out.fileno())

    def pending(self, kind: str) -> int:
        path = self._file(kind)
        if not path.is_file():
            return 0
        with path.open(encoding="utf-8") as handle:
            return sum(1 for line in handle if line.strip())

    def replay(self, kind: str, write: Callable[[dict[str, Any]], object]) -> int:
        """Write spooled records in order; stops at the first failure and keeps the rest. Returns the count."""
        with self._lock:
            path = self._file(kind)
            if not path.is_file():
                return 0
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            done = 0
            for line in lines:
                try:
                    write(json.loads(line))
                except Exception as exc:
                    log.info("spool %s: %d written, stopped at: %s", kind, done, exc)
                    break
                done += 1
            rest = lines[done:]
            if rest:
                tmp = path.with_suffix(".tmp")
                tmp.write_text("".join(line + "\n" for line in rest), encoding="utf-8")
                os.replace(tmp, path)
            else:
                path.unlink()
            return done
