"""The published document: the live catalog's vocabulary as enums (following a reload), BentoML's endpoints, and
exactly the statuses each operation can answer. In process, without a runtime or a world."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from nextbest.core.catalog import load_catalog
from nextbest.core.wire import JsonBool, JsonFloat, JsonInt, JsonTime
from nextbest.serving.app import create_app
from nextbest.serving.schemas import DecideRequest
from nextbest.settings import load_settings

PROJECT = Path(__file__).resolve().parents[3]
STATUSES = {
    ("post", "/decide"): {"200", "401", "409", "413", "422", "503"},
    ("post", "/decide/batch"): {"200", "401", "409", "413", "422", "503"},
    ("post", "/events"): {"200", "401", "413", "422", "503"},
    ("post", "/feedback"): {"200", "401", "404", "413", "422", "503"},
    ("post", "/feedback/batch"): {"200", "401", "413", "422", "503"},
    ("get", "/ready"): {"200", "503"},
    ("post", "/admin/reload"): {"200", "401", "413", "503"},
    ("get", "/explorer/meta"): {"200", "401", "503"},
    ("post", "/explorer/lookup"): {"200", "401", "413", "422", "503"},
    ("get", "/analytics/data"): {"200", "401", "422", "503"},
    ("post", "/ping"): {"200", "400"},
    ("get", "/healthz"): {"200"},
    ("get", "/livez"): {"200"},
    ("get", "/readyz"): {"200", "503"},
    ("get", "/metrics"): {"200"},
}


def _runtime(channels: tuple[str, ...], actions: tuple[str, ...]) -> Any:
    catalog = SimpleNamespace(channels=channels, ids=actions)
    settings = load_settings(project_dir=PROJECT)
    return SimpleNamespace(settings=settings, components=SimpleNamespace(policy=SimpleNamespace(catalog=catalog)))


def _enums(document: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    schemas = document["components"]["schemas"]
    channel = schemas["DecideRequest"]["properties"]["channel"]["enum"]
    assert schemas["LookupRequest"]["properties"]["channel"]["enum"] == channel
    array = next(s for s in schemas["DecideRequest"]["properties"]["candidates"]["anyOf"] if s["type"] == "array")
    return channel, array["items"]["enum"], schemas["WhatIf"]["properties"]["rules_file"]["enum"]


def test_every_operation_declares_exactly_the_statuses_it_can_answer() -> None:
    document = create_app().openapi()
    found = {(m, p): set(op["responses"]) for p, item in document["paths"].items() for m, op in item.items()}
    assert found == STATUSES
    for (method, path), statuses in STATUSES.items():
        for status in statuses - {"200"}:
            answer = document["paths"][path][method]["responses"][status]
            if path == "/readyz":  # BentoML's probe: plain text
                continue
            assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    unauthorized = document["paths"]["/events"]["post"]["responses"]["401"]
    assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True
    assert document["paths"]["/decide"]["post"]["responses"]["503"]["headers"]["Retry-After"]["required"] is True


def test_channels_actions_and_rule_files_are_enums_of_the_live_catalog_and_follow_a_reload() -> None:
    app = create_app()
    catalog = load_catalog(PROJECT / "catalog" / "actions.yaml")
    assert _enums(app.openapi()) == (["any", *catalog.channels], list(catalog.ids), ["guardrails.yaml"])
    app.state.runtime = _runtime(("email", "sms"), ("no_action", "email_promo"))
    with TestClient(app) as client:
        first = client.get("/openapi.json").json()
        assert _enums(first)[:2] == (["any", "email", "sms"], ["no_action", "email_promo"])
        assert app.openapi() is app.openapi()  # built once per vocabulary
        app.state.runtime = _runtime(("email", "sms", "push"), ("no_action", "email_promo"))  # a reload
        assert _enums(client.get("/openapi.json").json())[0] == ["any", "email", "sms", "push"]


def test_context_keys_are_constrained_for_every_key() -> None:
    context = DecideRequest.model_json_schema()["properties"]["context"]
    assert "patternProperties" not in context  # would leave keys outside the pattern unconstrained
    assert context["propertyNames"]["pattern"] and context["additionalProperties"]["anyOf"]


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (JsonBool, [True, False], [0, 1, "true", "yes", None]),
        (JsonInt, [2, 2.0], ["2", True, 2.5]),
        (JsonFloat, [2, 2.5], ["2.5", True]),
        (JsonTime, ["2026-11-01T10:00:00Z", "2026-11-01"], [1_700_000_000, "1700000000", True]),
    ],
)
def test_request_values_are_what_the_document_says(kind: Any, good: list[Any], bad: list[Any]) -> None:
    adapter = TypeAdapter(kind)
    for value in good:
        adapter.validate_python(value)
        adapter.validate_json(json.dumps(value))
    for value in bad:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)


def test_event_answers_name_only_known_types_and_views() -> None:
    from typing import get_args

    from nextbest.core.events import EVENT_TYPES, EVENT_VIEW
    from nextbest.serving.schemas import EventResponse

    assert get_args(EventResponse.model_fields["type"].annotation) == EVENT_TYPES
    assert set(get_args(EventResponse.model_fields["view"].annotation)) == set(EVENT_VIEW.values())
