"""The fallback policy (nextbest/core/degradation.py): which degradation wins, and what it says."""

from __future__ import annotations

import pytest

from nextbest.core.degradation import DecisionInputs, Degradation, degradation

FRESH = {"profile": "fresh", "orders": "fresh"}
MIXED = {"profile": "stale", "orders": "fresh", "x": "missing"}


def test_the_model_decides_when_everything_is_there() -> None:
    assert degradation(DecisionInputs("C1", view_status=FRESH)) is None


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (  # the store first: nothing else was read
            DecisionInputs("C1", store_error="ConnectionError", model_loaded=False),
            Degradation("store", "online store unavailable: ConnectionError", with_rules=False),
        ),
        (
            DecisionInputs("C1", view_status={"profile": "missing", "orders": "missing"}, model_loaded=False),
            Degradation("unknown", "unknown customer C1: no features", with_rules=False),
        ),
        (DecisionInputs(42, view_status={}), Degradation("unknown", "unknown customer 42: no features", False)),
        (DecisionInputs("C1"), Degradation("unknown", "unknown customer C1: no features", False)),
        (  # freshness before the model; every view that is not fresh is named, in order
            DecisionInputs(
                "C1", view_status={"profile": "stale", "orders": "fresh", "x": "missing"}, model_loaded=False
            ),
            Degradation("stale", "stale or missing features: profile (stale), x (missing)", with_rules=True),
        ),
        (
            DecisionInputs("C1", view_status=FRESH, model_loaded=False, model_error="registry unreachable"),
            Degradation("model", "registry unreachable", with_rules=True),
        ),
        (
            DecisionInputs("C1", view_status=FRESH, model_loaded=False),
            Degradation("model", "no model loaded", with_rules=True),
        ),
        (
            DecisionInputs("C1", view_status=FRESH, control_scorable=False),
            Degradation("model", "the model cannot score the control action", with_rules=False),
        ),
    ],
)
def test_precedence_and_reasons(inputs: DecisionInputs, expected: Degradation) -> None:
    assert degradation(inputs) == expected
