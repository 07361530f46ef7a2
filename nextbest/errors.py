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


class UnavailableError(NextbestError):
    """A backend (online store, registry, decision log) cannot be reached right now."""


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line naming the first invalid field and why, e.g. ``customers: Input should be >= 100``."""
    first = exc.errors()[0]
    parts = [str(p) for p in first["loc"] if not str(p).startswith(("tagged-union[", "function-"))]
    where = ".".join(parts) or exc.title
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "union_tag_invalid":
        where = ".".join([*parts, "type"]) if parts else "type"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{prefix}{where}: {message}{more}"
