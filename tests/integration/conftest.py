"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from nextbest.serving.app import create_app
from nextbest.serving.runtime import DecisionRuntime


@pytest.fixture(scope="module")
def client(runtime: DecisionRuntime) -> Iterator[TestClient]:
    """The decision API in process (the FastAPI app the BentoML service mounts) over the `runtime` fixture
    of the requesting module or directory."""
    app = create_app()
    app.state.runtime = runtime
    with TestClient(app) as c:
        yield c
