"""Request body limits, enforced before anything parses a body: a 50 MB ``context`` never reaches JSON decoding,
validation or the decision log.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is refused at once; a body sent without
one (chunked) is counted as it streams and refused when it passes the limit. Either way the answer is a 413 in
the service's error contract, with the limit in the message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic_core import to_json
from starlette.exceptions import HTTPException

from nextbest.serving.schemas import ErrorResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths whose bodies may be as large as a batch (many decisions or feedback items, a pasted ruleset).
BATCH_PATHS = frozenset({"/decide/batch", "/feedback/batch", "/explorer/lookup"})


class BodyTooLarge(HTTPException):
    """Raised from the body stream once it passes the limit: an HTTP exception, so the app's handler answers it
    (FastAPI turns other errors while reading a body into a 400)."""

    field = "body"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: request bodies of this endpoint are at most {limit:,} bytes")
        self.limit = limit


def body_limit(path: str, single: int, batch: int) -> int:
    """The body limit of ``path``: ``batch`` for batch endpoints, ``single`` for every other."""
    return batch if path.rstrip("/") in BATCH_PATHS else single


async def too_large(send: Send, limit: int) -> None:
    body = to_json(ErrorResponse(error=str(BodyTooLarge(limit).detail), field="body").model_dump())
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuses request bodies over the limit of their path (``limits(path) -> bytes``) with a JSON 413."""

    def __init__(self, app: ASGIApp, limits: Callable[[str], int]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limits(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await too_large(send, limit)
                    return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if started:  # the app answered before reading it all: nothing more to say
                return
            await too_large(send, limit)
