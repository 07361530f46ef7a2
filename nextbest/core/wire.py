"""JSON values exactly as the published OpenAPI document types them, for the request models of the HTTP API.

Pydantic's lax mode also takes ``"2"`` for an integer, ``0`` or ``"yes"`` for a boolean, ``"1.5"`` for a number
and ``1700000000`` for a time: values the document says are invalid. These types refuse them, so the service
accepts what its document describes. An integer written as ``2.0`` is still an integer (JSON Schema's reading).
Python callers that validate JSON-decoded data (the spool's replay, ``nextbest push-event``) pass the same
values, and ``datetime`` objects stay accepted for times.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict
from pydantic_core import PydanticCustomError


def _whole(value: Any) -> Any:
    return int(value) if type(value) is float and value.is_integer() else value


_DATE = re.compile(r"\d{4}-\d\d-\d\d")  # how an ISO 8601 date-time starts (a date alone is midnight)


def _time(value: Any) -> Any:
    if isinstance(value, datetime) or (type(value) is str and _DATE.match(value)):
        return value
    raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 date-time string")


#: true or false (not 0/1, not "true").
JsonBool = Annotated[bool, Strict()]
#: A JSON integer (2 or 2.0), not a string or boolean.
JsonInt = Annotated[int, Strict(), BeforeValidator(_whole)]
#: A JSON number (integers included), not a string or boolean.
JsonFloat = Annotated[float, Strict()]
#: An ISO 8601 date-time string (or a datetime in Python), not a number of seconds, numeric text included.
JsonTime = Annotated[datetime, BeforeValidator(_time)]
