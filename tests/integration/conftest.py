"""Fixtures shared by the integration tests: the app in process; decision-log tables on the real PostgreSQL
server and a TCP proxy to cut it (the decision log's tests and the service's).

Under ``CI=true`` an unreachable server fails the tests (a production backend that is not tested is not
supported); on a developer machine the tests skip and say how to start it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nextbest.io.decision_log import DecisionLog, open_decision_log
from nextbest.serving.app import create_app
from nextbest.serving.runtime import DecisionRuntime
from tests.support.databases import decision_log_tables
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture(scope="module")
def client(runtime: DecisionRuntime) -> Iterator[TestClient]:
    """The decision API in process (the FastAPI app the BentoML service mounts) over the `runtime` fixture
    of the requesting module or directory."""
    app = create_app()
    app.state.runtime = runtime
    with TestClient(app) as c:
        yield c


@pytest.fixture
def postgres_log_url(postgres_url: str) -> Iterator[str]:
    """A decision-log URL on the shared test database with tables of its own, dropped afterwards."""
    with decision_log_tables(postgres_url) as url:
        yield url


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[TcpProxy]:
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A decision-log URL of each backend (the tests of both logs)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'decisions.db'}"  # the parent directory does not exist yet
    return str(request.getfixturevalue("postgres_log_url"))


@pytest.fixture
def log(url: str) -> Iterator[DecisionLog]:
    opened = open_decision_log(url)
    yield opened
    opened.close()
