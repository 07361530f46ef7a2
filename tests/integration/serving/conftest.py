"""The real PostgreSQL server for serving tests: never silently skipped in CI.

Under ``CI=true`` an unreachable server fails the tests (a production backend that is not tested is not
supported); on a developer machine the tests skip and say how to start it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from nextbest.serving.app import create_app
from nextbest.serving.runtime import DecisionRuntime

POSTGRES_URL = os.environ.get("NEXTBEST_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
START_HINT = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of a reachable PostgreSQL server (``NEXTBEST_TEST_POSTGRES_URL`` overrides the default)."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"PostgreSQL at {POSTGRES_URL} is unreachable ({first}); {START_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture
def postgres_log_url(postgres_url: str) -> Iterator[str]:
    """A decision-log URL on the shared test database with tables of its own, dropped afterwards."""
    import psycopg

    prefix = f"t{uuid.uuid4().hex[:12]}_"
    yield f"{postgres_url}?table_prefix={prefix}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {prefix}feedback, {prefix}decisions")


class TcpProxy:
    """A TCP forwarder to PostgreSQL that a test can take down and bring back, like a server restart,
    without touching the shared server other tests use."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = 0
        self._server: socket.socket | None = None
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        with self._lock:
            if self._server is not None:  # shutdown wakes the thread blocked in accept(); close alone does not
                with contextlib.suppress(OSError):
                    self._server.shutdown(socket.SHUT_RDWR)
                self._server.close()
                self._server = None
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._socks.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
                upstream = socket.create_connection(self.upstream)
            except OSError:
                return
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[TcpProxy]:
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def client(runtime: DecisionRuntime) -> Iterator[TestClient]:
    """The decision API in process over the module's `runtime` fixture."""
    app = create_app()
    app.state.runtime = runtime
    with TestClient(app) as c:
        yield c
