"""Compiling one CEL condition: check its names, inline parameters, split it for staged evaluation.

Shared by rule files and by catalog eligibility conditions, so both are held to the same checks and both
get the same load-time work (everything that depends only on the catalog is evaluated once, not per request).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import cel

from nextbest.core.catalog import ActionCatalog
from nextbest.core.contact import HISTORY_FIELDS
from nextbest.core.rules.syntax import (
    VARIABLES,
    References,
    first_line,
    inline,
    literal,
    normalize,
    references,
    split_conjuncts,
)
from nextbest.errors import ConfigError

Mode = Literal["enforce", "shadow", "off"]
OnError = Literal["fire", "skip"]
ACTION_ATTRIBUTES = ("id", "channels", "category", "value", "cost", "discount", "lever", "consent", "tags")
REQUEST_FIELDS = ("channel", "now", "hour", "weekday", "context")
_KNOWN_FIELDS: dict[str, tuple[str, ...]] = {
    "action": ACTION_ATTRIBUTES,
    "request": REQUEST_FIELDS,
    "history": HISTORY_FIELDS,
}
FAR_PAST, FAR_FUTURE = -(2**62), 2**62


@dataclass(frozen=True)
class Conjunct:
    """One top-level ``&&`` operand, parameters inlined. ``kind`` decides when it is evaluated: ``static``
    (catalog only: once per action at load), ``request`` (no action: once per request), ``mixed``."""

    source: str
    refs: References

    @cached_property
    def kind(self) -> str:
        uses = self.refs.variables
        if uses <= {"action"}:
            return "static"
        return "mixed" if "action" in uses else "request"


@dataclass(frozen=True)
class Rule:
    """A compiled rule (or a catalog eligibility condition turned into one)."""

    id: str
    message: str
    mode: Mode
    suppress: bool
    lever: float  # 1.0 for suppress rules
    on_error: OnError
    when: str
    program: cel.Program  # the condition as written (``params`` as a variable): the reference semantics
    refs: References
    conjuncts: tuple[Conjunct, ...]
    start_ts: int = FAR_PAST
    end_ts: int = FAR_FUTURE
    origin: str = ""

    @property
    def effect(self) -> str:
        return "suppress" if self.suppress else "lever"

    def active(self, now: int) -> bool:
        return self.mode != "off" and self.start_ts <= now < self.end_ts


def compile_condition(
    label: str, when: str, params: Mapping[str, object]
) -> tuple[cel.Program, References, tuple[Conjunct, ...]]:
    """Compile, check variable and field names, inline parameters and split; ``label`` prefixes errors."""
    try:
        program = cel.compile(when)
        refs = references(when)
    except Exception as exc:
        raise ConfigError(f"{label}: invalid CEL: {first_line(str(exc))}") from exc
    if refs.shadowed:
        raise ConfigError(f"{label}: {sorted(refs.shadowed)[0]!r} is reserved and cannot name a comprehension variable")
    unknown = sorted(set(program.variables()) - set(VARIABLES) - refs.bound)
    if unknown:
        raise ConfigError(f"{label}: unknown variable {unknown[0]!r}; conditions may use {', '.join(VARIABLES)}")
    for var, known in _KNOWN_FIELDS.items():
        bad = sorted(refs.fields[var] - set(known))
        if bad:
            raise ConfigError(f"{label}: unknown field {var}.{bad[0]}; {var} has {', '.join(known)}")
    missing = sorted(refs.fields["params"] - set(params))
    if missing:
        known_params = ", ".join(sorted(params)) or "none"
        raise ConfigError(f"{label}: unknown parameter params.{missing[0]} (defined: {known_params})")
    inlined = normalize(inline(when, "params", params))
    try:
        cel.compile(inlined)
    except Exception as exc:  # pragma: no cover - inlining literals into valid CEL keeps it valid
        raise ConfigError(f"{label}: cannot inline parameters: {first_line(str(exc))}") from exc
    conjuncts = tuple(Conjunct(c, references(c)) for c in split_conjuncts(inlined))
    return program, refs, conjuncts


def eligibility_rules(catalog: ActionCatalog, params: Mapping[str, Any]) -> tuple[Rule, ...]:
    """Catalog ``eligibility`` conditions as enforce-mode suppress rules ``eligibility:<action>``."""
    out = []
    for a in catalog.actions:
        if a.eligibility is None or a.id == catalog.control:
            continue
        label = f"catalog action {a.id}: eligibility"
        compile_condition(label, a.eligibility, params)
        when = f"action.id == {literal(a.id)} && !({a.eligibility}\n)"
        program, refs, conjuncts = compile_condition(label, when, params)
        message = f"not eligible: {a.eligibility}"
        rule = Rule(f"eligibility:{a.id}", message, "enforce", True, 1.0, "fire", when, program, refs, conjuncts)
        out.append(rule)
    return tuple(out)
