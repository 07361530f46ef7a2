"""The HTTP API's error contract: the error statuses operations declare (``ERRORS``, ``responses``), the
``ErrorResponse`` body (``error_response``), and the exception handlers that map every error to it
(``add_error_handlers``).

Every error is JSON ``{"error": "<field>: <problem>", "field": ..., "detail": [...]}`` with a 4xx status for
anything the caller can fix; a decision never fails with a 500 (the runtime degrades instead).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nextbest.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    DataError,
    NextbestError,
    NotFoundError,
    UnavailableError,
)
from nextbest.serving.schemas import ErrorResponse

log = logging.getLogger("nextbest.serving.app")  # the API's logger: its records keep the name they always had
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's 400 detail for a body it cannot decode
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


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of an operation: these error statuses (``ERRORS``), each with ``ErrorResponse``."""
    return {code: {**ERRORS[code], "model": ErrorResponse} for code in codes}


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    detail: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error answer: ``status`` with the ``ErrorResponse`` body."""
    body = ErrorResponse(error=message, field=field, detail=detail or []).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def _field_of(loc: tuple[Any, ...] | list[Any], kind: str = "") -> str:
    if kind == "json_invalid":  # FastAPI locates a JSON syntax error by character: ("body", 12)
        return "body"
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    parts = [p for p in parts if not p.startswith(("tagged-union[", "function-"))]
    return ".".join(parts) or "body"


def add_error_handlers(app: FastAPI) -> None:
    """Map every error ``app`` can raise to the error contract: validation errors, HTTP errors, our own
    (``NextbestError``) and, as the last resort, anything unexpected."""

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
        return error_response(422, f"{field}: {first.get('msg', 'invalid')}{more}", field, detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 405 keeps its Allow header; a body over the limit names the body.
        if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:  # FastAPI's answer to undecodable bytes
            detail = [{"field": "body", "message": "not UTF-8 JSON", "type": "json_invalid"}]
            return error_response(422, "body: not valid JSON (or not UTF-8)", "body", detail)
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "field", None), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The last resort: still the error contract (JSON, one line), never a stack trace or plain text.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the service log has the details")

    @app.exception_handler(NextbestError)
    async def domain(_: Request, exc: NextbestError) -> JSONResponse:
        message = str(exc)
        field = getattr(exc, "field", None) or (message.split(":", 1)[0] if ":" in message else None)
        if isinstance(exc, AuthError):
            return error_response(401, message, None, headers={"WWW-Authenticate": "ApiKey"})
        if isinstance(exc, NotFoundError):
            return error_response(404, message, field)
        if isinstance(exc, ConflictError):
            return error_response(409, message, field)
        if isinstance(exc, UnavailableError):
            return error_response(503, message, None, headers={"Retry-After": "5"})
        if isinstance(exc, DataError | ConfigError):
            return error_response(422, message, field)
        return error_response(422, message, field)
