"""Serving test fixtures: decision-log tables on the real PostgreSQL server, a TCP proxy to cut it, the app.

Under ``CI=true`` an unreachable server fails the tests (a production backend that is not tested is not
supported); on a developer machine the tests skip and say how to start it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
def postgres_log_url(postgres_url: str) -> Iterator[str]:
    """A decision-log URL on the shared test database with tables of its own, dropped afterwards."""
    import psycopg

    prefix = f"t{uuid.uuid4().hex[:12]}_"
    yield f"{postgres_url}?table_prefix={prefix}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {prefix}feedback, {prefix}decisions")


@pytest.fixture
def postgres_proxy(postgres_url: str) -> Iterator[TcpProxy]:
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    yield proxy
    proxy.stop()
