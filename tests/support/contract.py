"""What the OpenAPI contract test (schemathesis against a live service) accepts beyond the document itself: the
few refusals of schema-valid requests that JSON Schema cannot express. Each is named, narrow and documented;
everything else a check reports fails the test.

Only ``positive_data_acceptance`` failures (ST202, "schema-valid request rejected") are ever tolerated, and only
when the request carries one of these values, each refused with a documented 422:

* a customer id written as a JSON number that is not an exact integer for every reader: ``42.0`` (an integer to
  JSON Schema; the service never rounds a number into an id) or an integer beyond 2**53, where the fuzzer's
  boundary arithmetic is binary floating point (it offers 2**63 + 190 as "below 2**63");
* a ``timestamp`` further in the future than the service's clock skew allows (a time the schema cannot bound);
* pasted what-if rules (``rules_yaml``), which must be a valid ruleset, a grammar no JSON Schema states;
* feedback naming a customer other than its decision's (the fuzzer follows ``/decide``'s ``decision_id`` into
  ``/feedback`` with a customer of its own): a fact of the stored decision, not of the request's shape.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

EXACT_INTEGERS = 2**53
CLOCK_SKEW = timedelta(seconds=300)  # ServingSettings.max_clock_skew_s, the default the test service runs with


def _values(body: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a JSON body."""
    if isinstance(body, dict):
        found = [body[key]] if key in body else []
        return found + [v for value in body.values() for v in _values(value, key)]
    if isinstance(body, list):
        return [v for value in body for v in _values(value, key)]
    return []


def _inexact_id(value: Any) -> bool:
    return type(value) is float or (type(value) is int and value >= EXACT_INTEGERS)


def _in_the_future(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when > datetime.now(UTC) + CLOCK_SKEW - timedelta(seconds=5)


def refusal_the_schema_cannot_state(body: Any, answer: Any = None) -> str | None:
    """Why a 422 to this schema-valid ``body`` is expected, or None when it must be accepted (``answer``: the
    422's JSON body)."""
    if any(_inexact_id(v) for v in _values(body, "customer_id")):
        return "a customer id that is not an exact JSON integer"
    if any(_in_the_future(v) for v in _values(body, "timestamp")):
        return "a timestamp beyond the allowed clock skew"
    if _values(body, "rules_yaml"):
        return "pasted what-if rules"
    if isinstance(answer, dict) and answer.get("field") == "customer_id" and "belongs to customer" in answer["error"]:
        return "another customer's decision"
    return None


def keep_failure(failure: Any, case: Any, response: Any) -> bool:
    """``filter_failure``: False only for a tolerated refusal (see the module docstring)."""
    if getattr(failure, "code", None) != "ST202" or getattr(failure, "status_code", None) != 422:
        return True
    try:
        answer = response.json()
    except Exception:
        answer = None
    return refusal_the_schema_cannot_state(case.body, answer) is None
