"""The HTTP API's request dependencies: the request's runtime (``runtime_of``, ``Runtime``) and the API-key checks
(``authenticated``, ``require_api_key``, ``require_decide_key``, ``Protected``).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import SecretStr

from nextbest.errors import AuthError, UnavailableError


def runtime_of(request: Request) -> Any:
    """The runtime serving ``request``; ``UnavailableError`` (503) while the service is starting."""
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
