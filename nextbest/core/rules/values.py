"""The values rules see and produce: the request, catalog and feature maps handed to CEL, and the hits.

Kept apart from the engine so batch evaluation, rule checks and test cases share one definition of how a
served feature becomes a CEL value (missing values are left out, so ``has(customer.x)`` tests presence).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextbest.core.catalog import Action

FALSE, TRUE, ERROR = 0, 1, 2
CONVERT: dict[str, Callable[[Any], Any]] = {"int64": int, "float64": float, "string": str}
Converters = list[tuple[str, Callable[[Any], Any]]]
HistoryPaths = dict[str, frozenset[str] | None] | None  # None: whole map / whole field


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule that fired (or erred) on one candidate action."""

    rule_id: str
    action_id: str
    effect: str  # "suppress" | "lever"
    message: str
    mode: str  # "enforce" | "shadow"
    error: str | None = None  # set when the condition could not be evaluated
    lever: float = 1.0


@dataclass(frozen=True)
class RequestInfo:
    """The request as rules see it. ``now`` is Unix seconds (UTC)."""

    channel: str
    now: int
    context: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    def as_map(self) -> dict[str, Any]:
        now = int(self.now)
        return {
            "channel": self.channel,
            "now": now,
            "hour": (now // 3600) % 24,
            "weekday": (now // 86_400 + 3) % 7,  # 0 = Monday (1970-01-01 was a Thursday)
            "context": dict(self.context),
        }


@dataclass(frozen=True)
class RuleEvaluation:
    """Rule outcome for K candidates. ``hits`` holds applied hits of enforce rules and every shadow hit;
    ``skipped`` the conditions that could not be evaluated and were skipped (``on_error: skip``)."""

    action_ids: tuple[str, ...]
    suppressed: np.ndarray  # (K,) bool, enforce-mode suppress rules only
    lever: np.ndarray  # (K,) product of enforce-mode levers that fired
    hits: tuple[RuleHit, ...]
    skipped: tuple[RuleHit, ...]
    version: str

    @property
    def shadow(self) -> tuple[RuleHit, ...]:
        return tuple(h for h in self.hits if h.mode == "shadow")


class Failure:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def error_text(value: object) -> str:
    if isinstance(value, Failure):
        return value.message
    return f"condition returned {type(value).__name__}, not a bool"


def action_map(action: Action) -> dict[str, Any]:
    """The ``action`` variable: catalog attributes with plain types (consent is "" when none)."""
    return {
        "id": action.id,
        "channels": list(action.channels),
        "category": action.category,
        "value": float(action.value),
        "cost": float(action.cost),
        "discount": float(action.discount),
        "lever": float(action.lever),
        "consent": action.consent or "",
        "tags": list(action.tags),
    }


def customer_values(features: Mapping[str, Any], converters: Converters) -> dict[str, Any]:
    """Served feature values as CEL values; missing values (None, NaN, unconvertible) are left out, so
    ``has(customer.x)`` tests presence."""
    out: dict[str, Any] = {}
    for name, convert in converters:
        value = features.get(name)
        if value is None:
            continue
        try:
            value = convert(value)
        except (TypeError, ValueError):
            continue
        if value == value:  # NaN is missing
            out[name] = value
    return out


def history_values(history: Mapping[str, Any], paths_: HistoryPaths) -> dict[str, Any]:
    """The parts of a history map some rule reads (a field absent from ``history`` stays absent)."""
    if paths_ is None:
        return dict(history)
    out: dict[str, Any] = {}
    for key, subs in paths_.items():
        if key not in history:
            continue
        value = history[key]
        if subs is None or not isinstance(value, Mapping):
            out[key] = value
        else:
            out[key] = {s: value[s] for s in subs if s in value}
    return out


def merge_paths(into: HistoryPaths, more: dict[str, set[str] | None] | None) -> HistoryPaths:
    if into is None or more is None:
        return None
    for key, subs in more.items():
        have = into.get(key, frozenset())
        into[key] = None if subs is None or have is None else have | subs
    return into


def same(value: Any) -> Any:
    return value
