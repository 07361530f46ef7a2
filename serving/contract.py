"""The published OpenAPI document (``/openapi.json``, ``nextbest openapi``): FastAPI's, plus what FastAPI cannot
know about.

* **The live catalog's vocabulary.** Channels and action ids are configuration (``catalog/actions.yaml``,
  hot-reloaded), so the request models take strings and the runtime checks them against the catalog it serves.
  The document states them anyway: ``channel`` (``any`` and the catalog's channels) and the items of
  ``candidates`` (the action ids) of ``/decide``, ``/decide/batch`` and the explorer's lookup are ``enum``\\ s of
  the catalog loaded now, so a client or fuzzer that follows the document is never refused for a channel. The
  document is built once per vocabulary and cached; a reload that changes the channels or actions changes the
  next ``/openapi.json``. Without a running service (``nextbest openapi``) the configured catalog file is read.
* **BentoML's own endpoints**, served by the BentoML server around this app: ``/ping`` (JSON) and the probes
  and metrics (plain text). They are documented here so the document covers everything the service answers
  but its HTML pages and their static assets.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

log = logging.getLogger(__name__)

#: (schema name, property) pairs that take a catalog channel / action id / a what-if's rule file.
CHANNEL_FIELDS = (("DecideRequest", "channel"), ("LookupRequest", "channel"))
ACTION_FIELDS = (("DecideRequest", "candidates"), ("LookupRequest", "candidates"))
RULE_FILE_FIELDS = (("WhatIf", "rules_file"),)
ANY_CHANNEL = "any"
Vocabulary = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _text(description: str, *statuses: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "200": {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}
    }
    for status in statuses:
        out[str(status)] = {"description": "Not ready yet", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return out


def _bentoml_paths() -> dict[str, Any]:
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    probe = {"tags": ["operations"]}
    return {
        "/ping": {
            "post": {
                "tags": ["operations"],
                "summary": "Ping",
                "description": "A trivial BentoML endpoint: the throughput reference of the HTTP benchmark. Served "
                "by BentoML; its 400 carries `error` and `detail` (no `field`).",
                "operationId": "ping_ping_post",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object", "title": "PingRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "title": "PingResponse",
                                    "properties": {"ok": {"type": "number"}, "time": {"type": "number"}},
                                    "required": ["ok", "time"],
                                    "additionalProperties": False,
                                }
                            }
                        },
                    },
                    "400": {
                        "description": "Not a JSON object",
                        "content": {"application/json": {"schema": error}},
                    },
                },
            }
        },
        "/healthz": {"get": {**probe, "summary": "Health (BentoML)", "responses": _text("Alive")}},
        "/livez": {"get": {**probe, "summary": "Liveness (BentoML)", "responses": _text("Alive")}},
        "/readyz": {
            "get": {
                **probe,
                "summary": "Readiness probe (BentoML)",
                "description": "200 once the service has started (its runtime is built); `/ready` has the details.",
                "responses": _text("Ready", 503),
            }
        },
        "/metrics": {
            "get": {
                **probe,
                "summary": "Prometheus metrics (BentoML)",
                "description": "Prometheus text format: decisions, suppressions, latency, reloads, spool.",
                "responses": _text("Metrics"),
            }
        },
    }


def vocabulary(app: FastAPI) -> Vocabulary | None:
    """(channels, action ids, rule files a what-if may name) of the catalog and settings the app serves, or of
    the configured files when no runtime is attached yet; None when they cannot be read (no enums then)."""
    from nextbest.serving.explorer_data import rule_files

    runtime = getattr(app.state, "runtime", None)
    try:
        if runtime is not None:
            settings, catalog = runtime.settings, runtime.components.policy.catalog
        else:
            from nextbest.core.catalog import load_catalog
            from nextbest.settings import load_settings

            settings = load_settings()
            assert settings.catalog_path is not None
            catalog = load_catalog(settings.catalog_path)
        files = tuple(sorted(rule_files(settings)))
    except Exception as exc:  # the document is still served, without the enums
        log.warning("OpenAPI document without the catalog's enums: %s", exc)
        return None
    return tuple(catalog.channels), tuple(catalog.ids), files


def _string_branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The string-typed parts of a property schema (itself, or members of its ``anyOf``)."""
    if schema.get("type") == "string":
        return [schema]
    return [s for s in schema.get("anyOf", []) if s.get("type") == "string"]


def with_vocabulary(document: dict[str, Any], words: Vocabulary) -> dict[str, Any]:
    """A copy of ``document`` whose channel, action-id and rule-file fields are enums of ``words``."""
    channels, actions, files = words
    out = copy.deepcopy(document)
    schemas = out.get("components", {}).get("schemas", {})
    for name, field in RULE_FILE_FIELDS:
        for branch in _string_branches(schemas.get(name, {}).get("properties", {}).get(field) or {}):
            branch["enum"] = list(files)
    for name, field in CHANNEL_FIELDS:
        prop = schemas.get(name, {}).get("properties", {}).get(field)
        for branch in _string_branches(prop or {}):
            branch["enum"] = [ANY_CHANNEL, *channels]
    for name, field in ACTION_FIELDS:
        prop = schemas.get(name, {}).get("properties", {}).get(field) or {}
        arrays = [s for s in [prop, *prop.get("anyOf", [])] if s.get("type") == "array"]
        for array in arrays:
            for branch in _string_branches(array.get("items", {})):
                branch["enum"] = list(actions)
    return out


def published_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document with BentoML's endpoints, and the live vocabulary as enums (cached
    per vocabulary)."""
    generate = app.openapi  # FastAPI's own, which caches the base document in app.openapi_schema
    cache: dict[Any, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        if "base" not in cache:
            base = copy.deepcopy(generate())
            base["paths"].update(_bentoml_paths())
            cache["base"] = base
        words = vocabulary(app)
        if words not in cache:
            for key in [k for k in cache if k != "base"]:
                del cache[key]  # one vocabulary live at a time
            cache[words] = cache["base"] if words is None else with_vocabulary(cache["base"], words)
        return cache[words]

    return openapi
