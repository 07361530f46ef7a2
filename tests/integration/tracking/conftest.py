"""A real `mlflow server` on a fresh PostgreSQL database: never silently skipped in CI.

Under ``CI=true`` an unreachable PostgreSQL fails the tests (a production backend that is not tested is not
supported); on a developer machine they skip and say how to start it. Each module gets its own database,
dropped afterwards, and a server with one worker and no job runner (ready in seconds, ~500 MB).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import scratch_database
from tests.support.servers import free_port


@pytest.fixture(scope="module")
def mlflow_database(postgres_url: str) -> Iterator[str]:
    """A fresh database for the MLflow backend store, as a SQLAlchemy URL on the psycopg 3 driver."""
    with scratch_database(postgres_url, "nextbest_mlflow", scheme="postgresql+psycopg") as url:
        yield url


def mlflow_server_command(backend: str, artifacts: Path, port: int) -> list[str]:
    """The same server as ``make mlflow-server``."""
    mlflow = Path(sys.executable).with_name("mlflow")
    return [
        str(mlflow), "server", "--backend-store-uri", backend, "--artifacts-destination", str(artifacts),
        "--serve-artifacts", "--workers", "1", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def mlflow_server(mlflow_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on the fresh database with proxied artifacts in a temp dir; yields its URL."""
    run = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    log = run / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            mlflow_server_command(mlflow_database, run / "artifacts", port),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=run,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not start:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
