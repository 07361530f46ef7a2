"""The HTTP API (FastAPI, mounted into the BentoML service): routes, API-key protection, and error mapping.

Routes are ``async`` and do their (CPU-bound, sub-millisecond to few-millisecond) work inline: one request at
a time per worker, no thread hops, and no shared mutable state between threads; scale with workers.

Every error is JSON ``{"error": "<field>: <problem>", "field": ..., "detail": [...]}`` with a 4xx status for
anything the caller can fix; a decision never fails with a 500 (the runtime degrades instead).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SecretStr, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nextbest import __version__
from nextbest.core.events import CustomerEvent
from nextbest.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    DataError,
    NextbestError,
    NotFoundError,
    UnavailableError,
)
from nextbest.serving.contract import published_openapi
from nextbest.serving.decision_output import encode
from nextbest.serving.explorer_schemas import ReloadResponse
from nextbest.serving.limits import BodyLimitMiddleware, body_limit
from nextbest.serving.schemas import (
    DecideBatchRequest,
    DecideBatchResponse,
    DecideRequest,
    DecisionResponse,
    ErrorResponse,
    EventResponse,
    FeedbackBatchRequest,
    FeedbackBatchResponse,
    FeedbackRequest,
    FeedbackResponse,
    ReadinessResponse,
)
from nextbest.settings import ServingSettings

log = logging.getLogger(__name__)
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's 400 detail for a body it cannot decode
M = TypeVar("M", bound=BaseModel)
#: The error statuses of the contract; every operation lists exactly those it can answer (``responses(...)``),
#: so the document declares every status the service gives and no other. The body is always ``ErrorResponse``.
ERRORS: dict[int, dict[str, Any]] = {
    400: {"description": "Invalid request body (BentoML's own endpoints)"},
    401: {
        "description": "Missing or wrong API key (send it as `X-API-Key` or `Authorization: Bearer`)",
        "headers": {"WWW-Authenticate": {"description": "`ApiKey`", "required": True, "schema": {"type": "string"}}},
    },
    404: {"description": "Unknown decision"},
    409: {"description": "A request_id reused with a different request"},
    413: {
        "description": "Body or batch too large: bodies over `max_body_bytes` (65,536 bytes by default; "
        "`max_batch_body_bytes`, 4,194,304, for batches and the explorer's lookup) are refused before parsing, "
        "batches over `max_batch_size` decisions (500) too; the limit is in the message"
    },
    422: {"description": "Invalid request; `error` and `field` name the field"},
    503: {
        "description": "The service is starting, or a backend it needs to answer is unavailable: retry later",
        "headers": {"Retry-After": {"description": "Seconds to wait", "required": True, "schema": {"type": "integer"}}},
    },
}


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


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of an operation: these error statuses (``ERRORS``), each with ``ErrorResponse``."""
    return {code: {**ERRORS[code], "model": ErrorResponse} for code in codes}


def _error(
    status: int,
    message: str,
    field: str | None = None,
    detail: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=message, field=field, detail=detail or []).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


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


def _field_of(loc: tuple[Any, ...] | list[Any], kind: str = "") -> str:
    if kind == "json_invalid":  # FastAPI locates a JSON syntax error by character: ("body", 12)
        return "body"
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    parts = [p for p in parts if not p.startswith(("tagged-union[", "function-"))]
    return ".".join(parts) or "body"


def runtime_of(request: Request) -> Any:
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise UnavailableError("the service is starting: no runtime yet")
    return runtime


def _given_key(request: Request) -> bytes:
    return (
        request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    ).encode()


def _matches(given: bytes, key: SecretStr | None) -> bool:
    return key is not None and bool(given) and secrets.compare_digest(given, key.get_secret_value().encode())


def authenticated(request: Request) -> bool:
    """True when no API key is set or the request carries it."""
    expected = runtime_of(request).settings.serving.api_key
    return expected is None or _matches(_given_key(request), expected)


def require_api_key(request: Request) -> None:
    """When ``NEXTBEST_SERVING__API_KEY`` is set, writes and admin calls need it (X-API-Key or Bearer)."""
    if not authenticated(request):
        raise AuthError("missing or wrong API key (send it as X-API-Key)")


def require_decide_key(request: Request) -> None:
    """Decisions need ``decide_api_key`` or ``api_key`` when either is set (open when neither is)."""
    serving = runtime_of(request).settings.serving
    if serving.decide_api_key is None and serving.api_key is None:
        return
    given = _given_key(request)
    if not (_matches(given, serving.decide_api_key) or _matches(given, serving.api_key)):
        raise AuthError("missing or wrong API key (send it as X-API-Key)")


Runtime = Annotated[Any, Depends(runtime_of)]
Protected = [Depends(require_api_key)]


def create_app() -> FastAPI:
    app = FastAPI(
        title="nextbest decision service",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
    )

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first: dict[str, Any] = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = _field_of(first.get("loc", ()), first.get("type", ""))
        detail = [
            {
                "field": _field_of(e.get("loc", ()), e.get("type", "")),
                "message": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in errors
        ]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return _error(422, f"{field}: {first.get('msg', 'invalid')}{more}", field, detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 405 keeps its Allow header; a body over the limit names the body.
        if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:  # FastAPI's answer to undecodable bytes
            detail = [{"field": "body", "message": "not UTF-8 JSON", "type": "json_invalid"}]
            return _error(422, "body: not valid JSON (or not UTF-8)", "body", detail)
        return _error(exc.status_code, str(exc.detail), getattr(exc, "field", None), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The last resort: still the error contract (JSON, one line), never a stack trace or plain text.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); the service log has the details")

    @app.exception_handler(NextbestError)
    async def domain(_: Request, exc: NextbestError) -> JSONResponse:
        message = str(exc)
        field = getattr(exc, "field", None) or (message.split(":", 1)[0] if ":" in message else None)
        if isinstance(exc, AuthError):
            return _error(401, message, None, headers={"WWW-Authenticate": "ApiKey"})
        if isinstance(exc, NotFoundError):
            return _error(404, message, field)
        if isinstance(exc, ConflictError):
            return _error(409, message, field)
        if isinstance(exc, UnavailableError):
            return _error(503, message, None, headers={"Retry-After": "5"})
        if isinstance(exc, DataError | ConfigError):
            return _error(422, message, field)
        return _error(422, message, field)

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
            return _error(413, f"requests: at most {limit} decisions per batch, got {len(body.requests)}", "requests")
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

    from nextbest.serving.explorer import router as explorer  # here: it imports require_api_key from this module

    app.include_router(explorer)
    app.openapi = published_openapi(app)  # type: ignore[method-assign]

    def limits(path: str) -> int:
        runtime = getattr(app.state, "runtime", None)
        serving = runtime.settings.serving if runtime is not None else ServingSettings()
        return body_limit(path, serving.max_body_bytes, serving.max_batch_body_bytes)

    app.add_middleware(BodyLimitMiddleware, limits=limits)
    return app
