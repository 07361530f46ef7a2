"""Serving test fixtures: decision-log tables on the real PostgreSQL server, a TCP proxy to cut it, the app.

Under ``CI=true`` an unreachable server fails the tests (a production backend that is not tested is not
supported); on a developer machine the tests skip and say how to start it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextbest.serving.decision_log import DecisionLog, open_decision_log
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def postgres_log_url(postgres_url: str) -> Iterator[str]:
    """A decision-log URL on the shared test database with tables of its own, dropped afterwards."""
    import psycopg

    prefix = f"t{uuid.uuid4().hex[:12]}_"
    yield f"{postgres_url}?table_prefix={prefix}"
    from nextbest.serving.log_history import drop_statements

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for sql in drop_statements(prefix):  # the tables, the contact-history summaries and their triggers
            conn.execute(sql)


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
