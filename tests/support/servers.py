"""The real PostgreSQL and Redis servers of the integration tests: never silently skipped in CI.

Under ``CI=true`` an unreachable server fails the tests (a production backend that is not tested is not
supported); on a developer machine the tests skip and say how to start it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

POSTGRES_URL = os.environ.get("NEXTBEST_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("NEXTBEST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_HINT = "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_HINT = "start it with: redis-server --daemonize yes --save '' --appendonly no"


def unreachable(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def require_postgres(url: str = POSTGRES_URL) -> str:
    """``url`` when PostgreSQL answers there (``NEXTBEST_TEST_POSTGRES_URL`` overrides the default)."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        unreachable(f"PostgreSQL at {url} is unreachable ({_first_line(exc)}); {POSTGRES_HINT}")
    return url


def require_redis(url: str = REDIS_URL) -> str:
    """``url`` when Redis answers there (``NEXTBEST_TEST_REDIS_URL`` overrides the default)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        unreachable(f"Redis at {url} is unreachable ({_first_line(exc)}); {REDIS_HINT}")
    return url


def free_port() -> int:
    """A free local TCP port: any the OS picks, or one in ``NEXTBEST_TEST_PORT_RANGE`` (e.g. ``3300-3399``)
    when set, for machines where tests may only listen on some ports."""
    low, _, high = os.environ.get("NEXTBEST_TEST_PORT_RANGE", "0-0").partition("-")
    for port in range(int(low), int(high or low) + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError(f"no free port in NEXTBEST_TEST_PORT_RANGE={low}-{high}")


@contextmanager
def running_service(home: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """A real ``bentoml serve`` on a free port (``nextbest serve`` as the walk-through starts it) for the
    duration of the block; yields its base URL. A service that does not come up fails with its log's tail."""
    from nextbest.cli.walkthrough import start_service, stop_service, wait_ready

    port = free_port()
    process = start_service(home, port, log, env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process)
    except Exception:
        stop_service(process)
        raise AssertionError(f"service did not start:\n{log.read_text()[-3000:]}") from None
    try:
        yield base
    finally:
        stop_service(process)
