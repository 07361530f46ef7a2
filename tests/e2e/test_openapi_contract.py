"""The OpenAPI contract, held by schemathesis against a live ``bentoml serve`` over loopback: every operation of
``/openapi.json`` fuzzed from the document itself (its examples, its boundaries, generated valid and invalid
requests), with zero server errors, zero undocumented statuses, content types or headers, and every body
conforming to its schema; schema-valid requests accepted and schema-invalid ones refused.

The service runs with an API key, a decision log of its own and a copy of the session's online store (the
fuzzer's events change customers' state, which other tests read), on the session's world and champion. Runs
are bounded (``MAX_EXAMPLES`` per operation and phase) and deterministic (a fixed seed, derandomized). The only
refusals of schema-valid requests tolerated are those JSON Schema cannot state (``tests/support/contract.py``).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.configuration
import pytest
import schemathesis

from nextbest.settings import Settings
from tests.support.contract import keep_failure
from tests.support.servers import running_service

pytestmark = pytest.mark.slow
DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
KEY = "e2e-contract-key"
MAX_EXAMPLES = 25
SEED = 14
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "unsupported_method",  # a 405 with its Allow header
    "allow_header_conformance",
)


def own_online_store(settings: Settings, home: Path) -> None:
    """``home/feast``: the session's Feast registry and a consistent copy of its SQLite online store."""
    target = home / "feast"
    shutil.copytree(settings.feast_dir, target, ignore=shutil.ignore_patterns("online.db*"))
    source, copy = sqlite3.connect(settings.feast_dir / "online.db"), sqlite3.connect(target / "online.db")
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()


def seed(client: httpx.Client) -> None:
    """Decisions for known customers, with feedback, so analytics and lookups have something to report."""
    r = client.post("/decide/batch", json={"requests": [{"customer_id": c, "channel": "any"} for c in range(1, 81)]})
    assert r.status_code == 200, r.text
    items = [
        {"decision_id": d["decision_id"], "type": kind, **({"revenue": 30.0} if kind == "conversion" else {})}
        for i, d in enumerate(r.json()["decisions"])
        for kind in ("impression", "click", "conversion")[: i % 4]
    ]
    r = client.post("/feedback/batch", json={"items": items})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def contract_service(
    settings: Settings, champion: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("contract")
    own_online_store(settings, home)
    env = {
        "NEXTBEST_DATA_DIR": str(settings.data_dir),
        "NEXTBEST_PROJECT_DIR": str(settings.project_dir),
        "NEXTBEST_MLFLOW_TRACKING_URI": str(settings.mlflow_tracking_uri),
        "NEXTBEST_DECISION_LOG_URL": f"sqlite:///{home / 'decisions.db'}",
        "NEXTBEST_SERVING__API_KEY": KEY,
        "NEXTBEST_SERVING__RELOAD_INTERVAL_S": "0",
    }
    with running_service(home, env, home / "serve.log") as base:
        with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=60) as client:
            seed(client)
        yield {"base": base, "log": home / "serve.log"}


def contract_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"X-API-Key": KEY},
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "request-timeout": 30,
            "suppress-health-check": ["all"],  # about the generator's speed, not the contract: no flaky failures
        }
    )


# Hypothesis keeps caches (constants, unicode tables) in a home directory, `.hypothesis` of the working
# directory by default: not in the checkout.
hypothesis.configuration.set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "nextbest-hypothesis")

# The committed document, which the live service publishes (checked below and in test_api): loaded at import, so
# pytest parametrizes one test per operation; the calls go to the live service of the module fixture.
contract = schemathesis.openapi.from_path(DOCUMENT, config=contract_config())


def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    return keep_failure(failure, case, response)


contract.hook(filter_failure)


def test_the_live_document_is_the_committed_one_and_covers_the_service(contract_service: dict[str, Any]) -> None:
    """Every JSON endpoint, BentoML's included; the pages and their assets stay out."""
    document = httpx.get(f"{contract_service['base']}/openapi.json").json()
    assert document == json.loads(DOCUMENT.read_text())
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert operations == {
        ("POST", "/decide"), ("POST", "/decide/batch"), ("POST", "/events"), ("POST", "/feedback"),
        ("POST", "/feedback/batch"), ("GET", "/ready"), ("POST", "/admin/reload"), ("GET", "/explorer/meta"),
        ("POST", "/explorer/lookup"), ("GET", "/analytics/data"), ("POST", "/ping"), ("GET", "/healthz"),
        ("GET", "/livez"), ("GET", "/readyz"), ("GET", "/metrics"),
    }  # fmt: skip
    for method, path in operations:  # without the key (the fuzzer always sends it): documented, and 401s say so
        r = httpx.request(method, f"{contract_service['base']}{path}", json={} if method == "POST" else None)
        assert str(r.status_code) in document["paths"][path][method.lower()]["responses"], (method, path, r.text)
        assert r.status_code != 401 or r.headers["www-authenticate"] == "ApiKey"


@contract.parametrize()
def test_the_service_keeps_its_openapi_contract(case: Any, contract_service: dict[str, Any]) -> None:
    case.call_and_validate(base_url=contract_service["base"])


def test_the_service_keeps_its_contract_across_calls(contract_service: dict[str, Any]) -> None:
    """Stateful: sequences of calls that follow the document's links (``/decide``'s ``decision_id`` into
    ``/feedback``), so feedback on real decisions is recorded, answered and checked too."""
    live = schemathesis.openapi.from_url(f"{contract_service['base']}/openapi.json", config=contract_config())
    live.hook(filter_failure)
    live.as_state_machine().run(
        settings=hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=6,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
