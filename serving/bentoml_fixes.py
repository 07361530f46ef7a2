"""Fixes for BentoML 1.4, applied in the service's worker before it serves: its request timeout, and (at the
end) the 500 its own endpoints give a body Starlette cannot parse.

``bentoml._internal.server.http.traffic.TimeoutMiddleware`` (the ``traffic.timeout`` of a service) schedules
``loop.call_later(timeout, ...)`` for every request and never cancels it. Each pending timer keeps the
request's future, its context and its OpenTelemetry span alive for the whole timeout: at 1,300 requests/s and
a 30 s timeout that is ~40,000 requests' worth of objects (~300,000), and every full garbage collection walks
them all: 50-170 ms stalls, growing with traffic, which were the service's p99 (measured with
``benchmarks/http_decide.py``; the objects seen with ``gc.get_objects``).

The replacement behaves the same (a 504 when no response has started within the timeout) but cancels the timer
when the request ends, and also ends the wait when the app finishes without sending anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

_PATCHED = "_nextbest_cancels_timer"


async def _call(self: Any, scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    from starlette.responses import JSONResponse

    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    def started(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    async def _send(message: Any) -> None:
        started()
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    fut.add_done_callback(started)
    try:
        try:
            await waiter
        except TimeoutError:
            if fut.cancel():
                body = {"error": f"Not able to process the request in {self.timeout} seconds"}
                await JSONResponse(body, status_code=504)(scope, receive, send)
            return
        await fut
    finally:
        timer.cancel()


def cancel_request_timers() -> None:
    """Replace ``TimeoutMiddleware.__call__`` (idempotent)."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    if not getattr(TimeoutMiddleware, _PATCHED, False):
        TimeoutMiddleware.__call__ = _call  # type: ignore[method-assign]
        setattr(TimeoutMiddleware, _PATCHED, True)


_ANSWERS_BAD_REQUESTS = "_nextbest_answers_bad_requests"


def answer_bad_requests() -> None:
    """BentoML's own endpoints (``/ping``) answer a request Starlette refuses to parse (a multipart body without
    a boundary) with its 4xx, as JSON ``{"error", "detail"}``, instead of a 500: ``api_endpoint_wrapper`` turns
    every exception it does not know, Starlette's ``HTTPException`` included, into a 500 (idempotent)."""
    from _bentoml_impl.server.app import ServiceAppFactory
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse

    if getattr(ServiceAppFactory, _ANSWERS_BAD_REQUESTS, False):
        return
    endpoint = ServiceAppFactory.api_endpoint

    async def api_endpoint(self: Any, name: str, request: Any) -> Any:
        try:
            return await endpoint(self, name, request)
        except HTTPException as exc:
            if exc.status_code >= 500:
                raise
            return JSONResponse({"error": str(exc.detail), "detail": []}, status_code=exc.status_code)

    ServiceAppFactory.api_endpoint = api_endpoint
    setattr(ServiceAppFactory, _ANSWERS_BAD_REQUESTS, True)
