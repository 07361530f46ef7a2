"""Errors users can act on. The CLI prints their message on one line; the service maps them to 4xx."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class NextbestError(Exception):
    """Base class: the message names the problem and what to do about it."""


class ConfigError(NextbestError):
    """A settings value, config file or catalog is invalid."""


class DataError(NextbestError):
    """Input data is missing or malformed (a missing directory, a column, an unknown action)."""


class NotFoundError(NextbestError):
    """Something asked for by id does not exist (a customer, a decision, a model version)."""


class ConflictError(NextbestError):
    """A request reuses an identifier that already names something else (e.g. a request_id with another
    request); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AuthError(NextbestError):
    """A request without the API key it needs (the service answers 401; not Python's ``PermissionError``, which
    a file system raises)."""


class UnavailableError(NextbestError):
    """A backend (online store, registry, decision log) cannot be reached right now."""


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line naming the first invalid field and why, e.g. ``customers: Input should be >= 100``."""
    errors = exc.errors()
    # A value that fits no member of a union fails once per member; a non-finite number says why best.
    first = next((e for e in errors if e["type"] == "finite_number"), errors[0])
    loc = first["loc"]
    if first is not errors[0] and len(loc) > 1 and loc[-1] == "float":
        loc = loc[:-1]  # the union member's name, not a field
    parts = [str(p) for p in loc if not str(p).startswith(("tagged-union[", "function-"))]
    where = ".".join(parts) or exc.title
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "union_tag_invalid":
        where = ".".join([*parts, "type"]) if parts else "type"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{prefix}{where}: {message}{more}"
