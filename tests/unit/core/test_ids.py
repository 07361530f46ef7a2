"""Customer ids: one canonical (string) form, validation at the boundary, and the control group agreeing on both
forms of an integer id."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from nextbest.core.events import parse_event
from nextbest.core.exploration import control_group_mask, in_control_group
from nextbest.core.ids import (
    JSON_SCHEMA,
    MAX_LENGTH,
    CustomerId,
    InvalidCustomerId,
    canonical_customer_id,
    canonical_customer_ids,
    customer_key,
)


class Body(BaseModel):
    customer_id: CustomerId


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        (42, "42"), ("42", "42"), (np.int64(42), "42"), (np.uint32(7), "7"), (2**63 - 1, str(2**63 - 1)),
        ("007", "007"), ("C0112906", "C0112906"), ("3f2a1c9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",) * 2, ("a b", "a b"),
        ("ünïcødé", "ünïcødé"), ("x" * MAX_LENGTH, "x" * MAX_LENGTH), (np.str_("C1"), "C1"), (42.0, "42"),
    ],
)  # fmt: skip
def test_canonical_form(value: Any, canonical: str) -> None:
    assert canonical_customer_id(value) == canonical
    assert type(canonical_customer_id(value)) is str


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"), ("x" * (MAX_LENGTH + 1), "at most 128"), ("a\x00b", "control"), ("a\nb", "control"),
        ("a\tb", "control"), ("a\x7fb", "control"), ("a\x85b", "control"), ("a\u2028b", "control"),
        (" C1", "whitespace"), ("C1 ", "whitespace"), ("\u00a0C1", "whitespace"), (0, "positive"), (-4, "positive"),
        (2**63, "below 2**63"), (True, "boolean"), (np.bool_(False), "boolean"), (None, "null"),
        (float("nan"), "NaN"), (4.5, "fractional"), ([1], "list"), (b"C1", "bytes"),
    ],
)  # fmt: skip
def test_invalid_ids_say_why(value: Any, why: str) -> None:
    with pytest.raises(InvalidCustomerId, match=re.escape(why)):
        canonical_customer_id(value)


def test_the_http_boundary_names_the_field_and_rejects_json_floats() -> None:
    assert Body.model_validate_json('{"customer_id": 42}').customer_id == "42"
    assert Body.model_validate_json('{"customer_id": "42"}').customer_id == "42"
    for raw in ('{"customer_id": 42.0}', '{"customer_id": ""}', '{"customer_id": "a\\u0000b"}'):
        with pytest.raises(ValidationError) as info:
            Body.model_validate_json(raw)
        error = info.value.errors()[0]
        assert error["loc"] == ("customer_id",) and error["type"] == "customer_id"
        assert "\x00" not in error["msg"]
    event = parse_event({"type": "cart_abandoned", "customer_id": 42, "cart_value": 1.0, "timestamp": "2026-01-01"})
    assert event.customer_id == "42"


def test_columns_are_canonicalised_with_the_bad_row_named() -> None:
    ints = np.array([5, 42, 7], dtype=np.int64)
    assert canonical_customer_ids(ints) == ["5", "42", "7"] == [canonical_customer_id(v) for v in ints]
    assert canonical_customer_ids(np.array([42, "42", np.int64(7), 8.0], dtype=object)) == ["42", "42", "7", "8"]
    assert canonical_customer_ids(["C1", "007"]) == ["C1", "007"]
    with pytest.raises(InvalidCustomerId, match="row 2: integer ids must be positive"):
        canonical_customer_ids(np.array([1, 2, 0]))
    with pytest.raises(InvalidCustomerId, match="row 1: must be a string or an integer, not NaN"):
        canonical_customer_ids(np.array([1.0, np.nan]))
    with pytest.raises(InvalidCustomerId, match="row 1: must not be empty"):
        canonical_customer_ids(["C1", ""])


def test_stored_ids_read_back_without_validation() -> None:
    """Rows an older version stored (or internal records) are read as their text, never rejected."""
    assert [customer_key(v) for v in (0, np.int64(12), 12.0, "C1", "")] == ["0", "12", "12", "C1", ""]


def test_the_published_pattern_agrees_with_the_validator() -> None:
    pattern = re.compile(JSON_SCHEMA["anyOf"][0]["pattern"])
    samples = ["C1", "a b", "x", "ünï", " x", "x ", "a\x00b", "a\nb", "a\x85", "\u2028", "a\tb", "xy", "\u00a0x"]
    for s in samples:
        try:
            canonical_customer_id(s)
            valid = True
        except InvalidCustomerId:
            valid = False
        assert (pattern.fullmatch(s) is not None) == valid, repr(s)


def test_the_control_group_treats_both_forms_of_an_integer_id_alike() -> None:
    ints = list(range(1, 2_000))
    assert [in_control_group(i, 0.2, "salt") for i in ints] == [in_control_group(str(i), 0.2, "salt") for i in ints]
    assert (
        control_group_mask(ints, 0.2, "salt").tolist()
        == control_group_mask([str(i) for i in ints], 0.2, "salt").tolist()
    )
    assert 300 < int(control_group_mask(ints, 0.2, "salt").sum()) < 500  # and it still draws a 20% share
