"""Customer ids: opaque strings (CRM ids like ``C0112906``, UUIDs), with integers accepted.

One canonical form everywhere: **the string**. An integer id becomes its decimal text (``42`` -> ``"42"``), so
``42`` and ``"42"`` are the same customer in the decision log, the online store, the control group and the
training sets; a string is kept exactly as given (``"007"`` stays ``"007"``: leading zeros of a CRM id are part
of it, which is why the canonical form is not the integer). Strings are validated, not repaired: at most
:data:`MAX_LENGTH` characters, not empty, no control characters (a NUL byte breaks PostgreSQL text, a newline
breaks log lines and CSV exports) and no leading or trailing whitespace (``"42 "`` would silently be another
customer than ``"42"``). Integers keep their former range (positive, below 2**63).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

import numpy as np
from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_LENGTH = 128
MAX_INT = 2**63 - 1
_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # C0 and C1 controls, line and paragraph separators
# The same rule for clients and fuzzers (JSON Schema / ECMA-262 syntax): no controls, no surrounding whitespace.
_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f\u2028\u2029]*[^\s\x00-\x1f\x7f-\x9f])?$"
RULE = f"customer ids are strings of 1 to {MAX_LENGTH} characters, or positive integers"


class InvalidCustomerId(ValueError):
    """A value that is not a customer id; the message says why (without echoing control characters)."""


def canonical_customer_id(value: Any) -> str:
    """The canonical (string) form of a customer id; raises :class:`InvalidCustomerId`."""
    kind = type(value)
    if kind is str:  # the common cases first: this runs on every request
        text: str = value
        if 0 < len(text) <= MAX_LENGTH and text.isprintable() and not (text[0] == " " or text[-1] == " "):
            return text  # printable: no control, separator or other non-printing character anywhere
        return _checked(text)
    if kind is int:
        number: int = value
        if 0 < number <= MAX_INT:
            return str(number)
        raise InvalidCustomerId(f"integer ids must be positive and below 2**63, got {number}")
    if isinstance(value, bool | np.bool_):
        raise InvalidCustomerId("must be a string or an integer, not a boolean")
    if isinstance(value, int | np.integer):
        return canonical_customer_id(int(value))
    if isinstance(value, str):  # a str subclass (e.g. numpy.str_)
        return canonical_customer_id(str(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        # Integer ids read through a float column (a CSV or frame column with a gap becomes float64).
        return canonical_customer_id(int(value))
    raise InvalidCustomerId(f"must be a string or an integer, not {_kind(value)}")


def _checked(value: str) -> str:
    """A string id that is not plainly printable: accepted unless it breaks a rule, with the rule named."""
    if not value:
        raise InvalidCustomerId("must not be empty")
    if len(value) > MAX_LENGTH:
        raise InvalidCustomerId(f"is {len(value)} characters long; at most {MAX_LENGTH}")
    if _BAD.search(value) is not None:
        raise InvalidCustomerId("must not contain control characters")
    if value[0].isspace() or value[-1].isspace():
        raise InvalidCustomerId("must not start or end with whitespace")
    return value


def customer_key(value: Any) -> str:
    """The canonical text of an id that was validated where it entered (or was stored by an older version, or
    is an internal record's): integers as their decimal text, strings unchanged. Unlike
    :func:`canonical_customer_id` it checks nothing, so reading old rows never fails on a rule made later."""
    if type(value) is str:
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def canonical_customer_ids(values: Iterable[Any] | np.ndarray) -> list[str]:
    """Canonical ids of many values (a column); the error names the first bad row."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        out: list[str] = values.astype(str).tolist()  # the common case, vectorised; the range is still checked
        if values.size and (values.min() <= 0 or (values.dtype.kind == "u" and values.max() > MAX_INT)):
            bad = int(np.flatnonzero((values <= 0) | (values > MAX_INT))[0])
            raise InvalidCustomerId(f"row {bad}: integer ids must be positive and below 2**63, got {values[bad]}")
        return out
    result: list[str] = []
    for row, value in enumerate(values):
        try:
            result.append(canonical_customer_id(value))
        except InvalidCustomerId as exc:
            raise InvalidCustomerId(f"row {row}: {exc}") from None
    return result


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float | np.floating):
        return "NaN" if value != value else f"a fractional number ({value!r})"
    return type(value).__name__


def _validate(value: Any) -> str:
    try:
        return canonical_customer_id(value)
    except InvalidCustomerId as exc:
        raise PydanticCustomError("customer_id", "{problem} ({rule})", {"problem": str(exc), "rule": RULE}) from None


def _validate_json(value: Any) -> str:
    """At the HTTP boundary a JSON number must be an integer: 42.0 or 4.2e1 is rejected, not rounded."""
    if type(value) is float:
        raise PydanticCustomError(
            "customer_id", "{problem} ({rule})", {"problem": "must be a string or an integer", "rule": RULE}
        )
    return _validate(value)


#: The published schema: a string (the canonical form) or a positive integer (accepted, stored as its text).
JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH, "pattern": _PATTERN},
        {"type": "integer", "minimum": 1, "exclusiveMaximum": 2**63},
    ],
    "description": "The customer: an opaque string id (e.g. a CRM id or UUID), or a positive integer, which is "
    'the same customer as its decimal text (42 and "42" are one customer). Responses and logs carry the string. '
    "An integer is written as one: 42.0 or 4.2e1 is refused (422), never rounded into an id.",
    "examples": ["C0112906", 42],
}

#: A request field holding a customer id: validated and converted to the canonical string.
CustomerId = Annotated[str, PlainValidator(_validate_json), WithJsonSchema(JSON_SCHEMA, mode="validation")]
