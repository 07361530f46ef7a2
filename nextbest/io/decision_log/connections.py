"""One database connection per thread, registered so the log can close every one of them.

A DB-API connection serves one statement at a time, so each thread gets its own; thread pools come and go, so
the connections of threads that have ended are closed when the next one is made. Shared by both backends.
"""

from __future__ import annotations

import threading
from typing import Generic, Protocol, TypeVar


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class ThreadConnections(Generic[C]):
    def __init__(self) -> None:
        self._local = threading.local()
        self._conns: dict[int, tuple[threading.Thread, C]] = {}
        self._lock = threading.Lock()
        self.closed = False

    def current(self) -> C | None:
        """This thread's connection, if it has one."""
        conn: C | None = getattr(self._local, "conn", None)
        return conn

    def adopt(self, conn: C) -> C:
        """Make ``conn`` this thread's connection (closing those of ended threads)."""
        me = threading.current_thread()
        with self._lock:
            for ident, (thread, old) in list(self._conns.items()):
                if not thread.is_alive():
                    old.close()
                    del self._conns[ident]
            self._conns[me.ident or 0] = (me, conn)
        self._local.conn = conn
        return conn

    def drop(self, conn: C) -> None:
        """Forget and close ``conn`` (a broken one, replaced on the next call)."""
        self._local.conn = None
        with self._lock:
            for ident, (_, held) in list(self._conns.items()):
                if held is conn:
                    del self._conns[ident]
        conn.close()

    def all(self) -> list[C]:
        with self._lock:
            return [conn for _, conn in self._conns.values()]

    def close_all(self) -> None:
        """Close every thread's connection; later calls find the log closed."""
        self.closed = True
        with self._lock:
            for _, conn in self._conns.values():
                conn.close()
            self._conns.clear()
        self._local = threading.local()
