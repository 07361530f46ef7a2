"""Scale-out backends for real: the Feast online store on Redis (behind a TCP proxy a test can cut or
freeze) and the decision log on PostgreSQL, on the session's small world and champion model.

Every run uses a Feast project of its own (``nbtest_<random>``), so its Redis keys (suffixed with the project)
never meet another run's, and deletes them at the end; decision-log tables get a prefix of their own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from nextbest.serving.runtime import DecisionRuntime, build_runtime
from nextbest.settings import Settings, load_settings
from tests.support.databases import decision_log_tables
from tests.support.redis_keys import delete_project_keys
from tests.support.servers import free_port, require_redis
from tests.support.tcp_proxy import TcpProxy

PROJECT = Path(__file__).resolve().parents[3]
RETRY_AFTER_S = 1.0  # the online store's fail-fast window after a Redis error (features/environments/redis.yaml)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()


@pytest.fixture(scope="session")
def redis_proxy(redis_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(redis_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379, free_port())
    proxy.start()
    yield proxy
    proxy.thaw()
    proxy.stop()


@pytest.fixture
def proxy_restored(redis_proxy: TcpProxy) -> Iterator[TcpProxy]:
    """The proxy for a test that cuts or freezes it; it forwards again afterwards, even when the test failed,
    and the online store's fail-fast window (``retry_after_s``, 1 s in features/environments/redis.yaml) has
    lapsed: a test that failed before the service recovered left the next one starting inside it ("Redis is
    unreachable (next attempt in 0.1 s)")."""
    yield redis_proxy
    redis_proxy.thaw()
    redis_proxy.stop()
    redis_proxy.start()
    time.sleep(RETRY_AFTER_S + 0.1)


@pytest.fixture(scope="session")
def redis_settings(
    redis_url: str, redis_proxy: TcpProxy, tmp_path_factory: pytest.TempPathFactory, settings: Settings, world_dir: Path
) -> Settings:
    """The Redis environment (through the proxy) on the session world, with the session's MLflow store."""
    db = urlsplit(redis_url).path or "/0"
    return load_settings(
        home=tmp_path_factory.mktemp("redis-home"),
        data_dir=world_dir,
        project_dir=PROJECT,
        environment="redis",
        redis_url=f"redis://127.0.0.1:{redis_proxy.port}{db}",
        feast_project=f"nbtest_{uuid.uuid4().hex[:12]}",
        mlflow_tracking_uri=settings.mlflow_tracking_uri,
    )


@pytest.fixture(scope="session")
def redis_store(redis_settings: Settings, redis_url: str, as_of: datetime) -> Iterator[Any]:
    """The repository applied and the world materialized into Redis; the project's keys are deleted after."""
    from nextbest.features.store import apply, materialize, open_store

    apply(redis_settings)
    materialize(redis_settings, end=as_of)
    store = open_store(redis_settings)
    yield store
    delete_project_keys(redis_url, redis_settings.feast_project)


@pytest.fixture(scope="session")
def log_url(postgres_url: str) -> Iterator[str]:
    """A decision log of its own on the shared test database (tables with a random prefix, dropped after)."""
    with decision_log_tables(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def service_settings(log_url: str, redis_settings: Settings) -> Settings:
    """The scale-out service: features from Redis, decisions and feedback in PostgreSQL."""
    return redis_settings.model_copy(update={"decision_log_url": log_url})


@pytest.fixture(scope="module")
def runtime(service_settings: Settings, redis_store: Any, champion: Any) -> Iterator[DecisionRuntime]:
    rt = build_runtime(service_settings)
    yield rt
    rt.backends.log.close()
