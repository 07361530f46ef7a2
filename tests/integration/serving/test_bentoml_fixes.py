"""BentoML's request timeout with nextbest's fix (``serving/bentoml_fixes.py``): the same 504 for a slow
request, and no timer (holding the request's objects) left behind by a finished one."""

from __future__ import annotations

import asyncio
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from nextbest.serving.bentoml_fixes import cancel_request_timers


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(float(scope["path"].strip("/") or 0))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _failing(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("boom")


async def _request(app: Any, path: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "path": path, "method": "GET", "headers": []}, receive, send)
    return sent


def _pending_timers(loop: asyncio.AbstractEventLoop) -> int:
    return sum(not h.cancelled() for h in loop._scheduled)  # type: ignore[attr-defined]


def test_finished_requests_leave_no_timer_and_slow_ones_still_get_a_504() -> None:
    cancel_request_timers()
    cancel_request_timers()  # idempotent
    middleware = TimeoutMiddleware(_app, timeout=0.2)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(50):
            sent = await _request(middleware, "/0")
            assert sent[0]["status"] == 200
        assert _pending_timers(loop) == 0  # BentoML's own keeps 50 timers (and their requests) for 0.2 s
        slow = await _request(middleware, "/1")
        assert slow[0]["status"] == 504 and b"0.2 seconds" in slow[1]["body"]
        await asyncio.sleep(0)  # the cancelled app task ends its own sleep
        assert _pending_timers(loop) == 0

    asyncio.run(run())


def test_an_app_that_fails_before_responding_raises_at_once() -> None:
    cancel_request_timers()
    middleware = TimeoutMiddleware(_failing, timeout=30)

    async def run() -> None:
        try:
            await asyncio.wait_for(_request(middleware, "/"), timeout=2)
        except RuntimeError as exc:
            assert str(exc) == "boom"
        else:
            raise AssertionError("the app's error was swallowed")

    asyncio.run(run())
