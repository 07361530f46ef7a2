"""The HTTP API (FastAPI, mounted into the BentoML service): the app and its routes.

Routes are ``async`` and do their (CPU-bound, sub-millisecond to few-millisecond) work inline: one request at
a time per worker, no thread hops, and no shared mutable state between threads; scale with workers.

The error contract and its handlers are in :mod:`nextbest.serving.http_errors`, the runtime and API-key
dependencies in :mod:`nextbest.serving.dependencies` (the explorer's routes use them too).
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from nextbest import __version__
from nextbest.core.events import CustomerEvent
from nextbest.serving.contract import published_openapi
from nextbest.serving.decision_output import encode
from nextbest.serving.dependencies import (
    Protected,
    Runtime,
    authenticated,
    require_decide_key,
    runtime_of,
)
from nextbest.serving.explorer import router as explorer
from nextbest.serving.explorer_schemas import ReloadResponse
from nextbest.serving.http_errors import add_error_handlers, error_response, responses
from nextbest.serving.limits import BodyLimitMiddleware, body_limit
from nextbest.serving.schemas import (
    DecideBatchRequest,
    DecideBatchResponse,
    DecideRequest,
    DecisionResponse,
    EventResponse,
    FeedbackBatchRequest,
    FeedbackBatchResponse,
    FeedbackRequest,
    FeedbackResponse,
    ReadinessResponse,
)
from nextbest.settings import ServingSettings

__all__ = ["create_app"]

M = TypeVar("M", bound=BaseModel)

#: What a decision leads to: its feedback (OpenAPI links; clients and stateful fuzzers follow them).
FEEDBACK_LINKS = {
    "feedback": {
        "operationId": "feedback_feedback_post",
        "requestBody": {"decision_id": "$response.body#/decision_id", "type": "impression"},
        "description": "Report what happened to this decision: `decision_id` is the decision's.",
    }
}

DESCRIPTION = """Next-best-action decisions: online features, uplift models, guardrail rules, arbitration on \
expected incremental net value, and a durable decision log.

**Errors** are JSON `{"error": "<field>: <problem>", "field": ..., "detail": [...]}` (`ErrorResponse`); each \
operation lists the statuses it can answer. **Keys**: with `NEXTBEST_SERVING__API_KEY` set, everything but \
`/ready` and BentoML's endpoints (`/ping`, probes, metrics) needs it as `X-API-Key` (or `Authorization: \
Bearer`), else 401. **Limits**: \
request bodies are at most `max_body_bytes` (65,536 bytes by default) and, for `/decide/batch`, \
`/feedback/batch` and `/explorer/lookup`, `max_batch_body_bytes` (4,194,304), refused with 413 before parsing; \
a batch holds at most `max_batch_size` decisions (500; 413); field limits are in the schemas. **Vocabulary**: \
`channel`, `candidates` and a what-if's `rules_file` are enums of the catalog and rule files the service runs \
now (the document follows a reload)."""

TAGS = [
    {"name": "decisions", "description": "Next best actions."},
    {"name": "events", "description": "Real-time customer events."},
    {"name": "feedback", "description": "What happened to a decision."},
    {"name": "operations", "description": "Readiness, reloads, and BentoML's ping, probes and metrics."},
    {"name": "explorer", "description": "Data of the decision explorer and analytics pages (read-only)."},
]


def _body(body: dict[str, Any]) -> Response:
    return Response(encode(body), media_type="application/json")


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body FastAPI publishes for a required JSON body of ``model``."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"content": {"application/json": {"schema": ref}}, "required": True}}


def _parse(model: type[M], raw: bytes) -> M:
    """``raw`` validated as ``model``; a bad body raises the 422 that FastAPI's own body validation raises."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def create_app() -> FastAPI:
    app = FastAPI(
        title="nextbest decision service",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
    )

    add_error_handlers(app)

    # The decision endpoints return the runtime's response body serialised once (pydantic-core), not a model:
    # FastAPI would dump a returned model to a dict, validate that again and serialise it, three passes over
    # every candidate (tests hold the bodies equal to the validated models). `response_model` still publishes
    # the contract in the OpenAPI document.
    # /decide parses and validates its body itself, in one pass (pydantic-core, from the raw bytes), instead of
    # FastAPI's JSON decoding, body-field validation and dependency solving; errors are the same 422s.
    @app.post(
        "/decide",
        response_model=DecisionResponse,
        tags=["decisions"],
        openapi_extra=_json_body(DecideRequest),
        responses={200: {"links": FEEDBACK_LINKS}, **responses(401, 409, 413, 422, 503)},
    )
    async def decide(request: Request) -> Response:
        """Decide the next best action for one customer."""
        require_decide_key(request)  # inline, not a dependency: FastAPI's dependency solving costs on every call
        body = _parse(DecideRequest, await request.body())
        return _body(runtime_of(request).decide_body(body))

    @app.post(
        "/decide/batch",
        response_model=DecideBatchResponse,
        tags=["decisions"],
        dependencies=[Depends(require_decide_key)],
        responses=responses(401, 409, 413, 422, 503),
    )
    async def decide_batch(body: DecideBatchRequest, runtime: Runtime) -> Response:
        """Decide for up to ``max_batch_size`` customers in one call."""
        limit = runtime.settings.serving.max_batch_size
        if len(body.requests) > limit:
            return error_response(
                413, f"requests: at most {limit} decisions per batch, got {len(body.requests)}", "requests"
            )
        return _body({"decisions": runtime.decide_bodies(body.requests)})

    @app.post(
        "/events",
        response_model=EventResponse,
        tags=["events"],
        dependencies=Protected,
        responses=responses(401, 413, 422, 503),
    )
    async def events(body: CustomerEvent, runtime: Runtime) -> EventResponse:
        """A real-time event (ticket opened/closed, cart abandoned, order placed, consent changed), visible to
        the next decision."""
        return runtime.push_event(body)  # type: ignore[no-any-return]

    @app.post(
        "/feedback",
        response_model=FeedbackResponse,
        tags=["feedback"],
        dependencies=Protected,
        responses=responses(401, 404, 413, 422, 503),
    )
    async def feedback(body: FeedbackRequest, runtime: Runtime) -> FeedbackResponse:
        """Impression, click, conversion (with revenue) or dismissal of a decision."""
        return runtime.feedback(body)  # type: ignore[no-any-return]

    @app.post(
        "/feedback/batch",
        response_model=FeedbackBatchResponse,
        tags=["feedback"],
        dependencies=Protected,
        responses=responses(401, 413, 422, 503),
    )
    async def feedback_batch(body: FeedbackBatchRequest, runtime: Runtime) -> FeedbackBatchResponse:
        """Many feedback events at once; each item reports whether it was recorded (or why not)."""
        return FeedbackBatchResponse(results=runtime.feedback_many(body.items))

    @app.get("/ready", response_model=ReadinessResponse, tags=["operations"], responses=responses(503))
    async def ready(request: Request, runtime: Runtime) -> ReadinessResponse:
        """Readiness with details: what is degraded, which versions are live, the last reload error. With an API
        key set, the details (file paths, reload errors, feature gaps) need the key."""
        return runtime.readiness(details=authenticated(request))  # type: ignore[no-any-return]

    @app.post(
        "/admin/reload",
        response_model=ReloadResponse,
        tags=["operations"],
        dependencies=Protected,
        responses=responses(401, 413, 503),
    )
    async def reload(runtime: Runtime) -> dict[str, Any]:
        """Reload rules, catalog and the model now (an invalid file is rejected; the last good one stays)."""
        return runtime.reload(force=True)  # type: ignore[no-any-return]

    app.include_router(explorer)
    app.openapi = published_openapi(app)  # type: ignore[method-assign]

    def limits(path: str) -> int:
        runtime = getattr(app.state, "runtime", None)
        serving = runtime.settings.serving if runtime is not None else ServingSettings()
        return body_limit(path, serving.max_body_bytes, serving.max_batch_body_bytes)

    app.add_middleware(BodyLimitMiddleware, limits=limits)
    return app
