"""A reused CEL context gives exactly what a fresh one gives, whatever changes between requests."""

from __future__ import annotations

import threading
from typing import Any

import cel
import pytest

from nextbest.core.rules.context import ContextCache, same

PROGRAM = cel.compile("[type(request.x) == int, request.x == true, has(customer.a), history.n > 1]")


def run(ctx: cel.Context) -> Any:
    try:
        return PROGRAM.execute(ctx)
    except Exception as exc:  # compare failures too
        return type(exc).__name__


SEQUENCE: list[dict[str, Any]] = [
    {"request": {"x": 1}, "customer": {"a": 1}, "history": {"n": 2}},
    {"request": {"x": True}, "customer": {"a": 1}, "history": {"n": 2}},  # 1 == True in Python, not in CEL
    {"request": {"x": 1.0}, "customer": {}, "history": {"n": 2}},
    {"request": {"x": 1}, "customer": {}, "history": {"n": 0}},
    {"request": {"x": 1}, "customer": {"a": 2}, "history": {"n": 0}},
    {"request": {"x": 1}, "customer": {"a": 2}, "history": {"n": 0}},  # nothing changed
    {"request": {"x": 1}, "customer": {"a": 2}},  # a variable gone
]


def test_a_reused_context_answers_as_a_fresh_one() -> None:
    cache = ContextCache()
    for values in SEQUENCE:
        assert run(cache.context(values)) == run(cel.Context(values)), values


def test_each_thread_has_its_own_context() -> None:
    cache = ContextCache()
    mine = cache.context(SEQUENCE[0])
    theirs: list[cel.Context] = []
    thread = threading.Thread(target=lambda: theirs.append(cache.context(SEQUENCE[0])))
    thread.start()
    thread.join()
    assert theirs[0] is not mine and cache.context(SEQUENCE[0]) is mine


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 1, True), (1, True, False), (1, 1.0, False), ("x", "x", True), ({"a": [1, 2]}, {"a": [1, 2]}, True),
        ({"a": [1, 2]}, {"a": [1, 2.0]}, False), ({"a": 1}, {"b": 1}, False), (float("nan"), float("nan"), False),
    ],
)  # fmt: skip
def test_values_are_the_same_only_with_the_same_types(a: Any, b: Any, expected: bool) -> None:
    assert same(a, b) is expected
