"""Rule test cases as data (``rules/cases/*.yaml``): an input and the expected effect on each action.

Product teams write a case next to every rule change, the way OPA and CEL conformance suites do: a case
where the rule fires and one where it does not. ``nextbest rules test`` and pytest both run them through
:func:`run_cases`. A case names the rules it is about (``rules:``) and is evaluated with only those rules,
so it states one rule's behaviour without depending on every other guardrail (catalog eligibility included);
omit ``rules`` to evaluate the whole ruleset plus eligibility (interactions). Coverage counts only cases
that name the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nextbest.core.catalog import ActionCatalog
from nextbest.core.contact import OUTCOMES, HistoryBuilder
from nextbest.core.features import FieldSpec
from nextbest.core.rules import Ruleset
from nextbest.core.rules.engine import RuleEngine
from nextbest.core.rules.values import RequestInfo
from nextbest.errors import ConfigError, describe_validation_error

DEFAULT_NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
Value = bool | int | float | str | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CaseContact(_Model):
    hours_ago: float = Field(ge=0.0)
    action: str
    channel: str
    outcome: Literal["sent", "impression", "click", "conversion", "ignored"] = "sent"


class CaseRequest(_Model):
    channel: str = "any"
    now: datetime = DEFAULT_NOW
    context: dict[str, bool | int | float | str] = Field(default_factory=dict)

    @field_validator("now")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Expectation(_Model):
    suppressed: bool | None = None
    lever: float | None = Field(None, ge=0.0, description="Product of enforce-mode levers that fired.")
    by: tuple[str, ...] | None = Field(None, description="Exactly these enforce rules suppress the action.")
    shadow: tuple[str, ...] | None = Field(None, description="Exactly these shadow rules fire on the action.")


class RuleCase(_Model):
    name: str = Field(min_length=1)
    rules: tuple[str, ...] | None = None
    customer: dict[str, Value] = Field(default_factory=dict)
    request: CaseRequest = Field(default_factory=CaseRequest)
    contacts: tuple[CaseContact, ...] = ()
    history: dict[str, Any] = Field(default_factory=dict, description="Overrides of the built history map.")
    expect: dict[str, Literal["suppressed", "allowed"] | Expectation] = Field(min_length=1)


class CaseFile(_Model):
    cases: tuple[RuleCase, ...] = Field(min_length=1)


@dataclass(frozen=True)
class LoadedCase:
    source: str
    case: RuleCase


@dataclass(frozen=True)
class CaseResult:
    source: str
    name: str
    passed: bool
    failures: tuple[str, ...]
    rules: tuple[str, ...] | None  # the rules the case is about (None: whole ruleset)
    fired: Mapping[str, tuple[str, ...]]  # expected action -> rules that fired on it (any mode)

    def __str__(self) -> str:
        status = "ok" if self.passed else "FAIL: " + "; ".join(self.failures)
        return f"{self.source}: {self.name}: {status}"


def load_cases(paths: Sequence[Path]) -> list[LoadedCase]:
    out: list[LoadedCase] = []
    for path in paths:
        try:
            raw = yaml.safe_load(path.read_text())
            parsed = CaseFile.model_validate(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, f"{path}: ")) from exc
        out.extend(LoadedCase(str(path), case) for case in parsed.cases)
    return out


def _expectation(value: Literal["suppressed", "allowed"] | Expectation) -> Expectation:
    if isinstance(value, Expectation):
        return value
    return Expectation(suppressed=value == "suppressed")


def run_case(engine: RuleEngine, loaded: LoadedCase) -> CaseResult:
    case, catalog = loaded.case, engine.catalog
    unknown = [a for a in case.expect if a not in catalog.by_id]
    if unknown:
        raise ConfigError(f"{loaded.source}: case {case.name!r}: unknown action(s) {unknown}")
    now = int(case.request.now.timestamp())
    builder = HistoryBuilder(catalog.channels, catalog.control)
    contacts = [(now - int(c.hours_ago * 3600), c.action, c.channel, c.outcome) for c in case.contacts]
    if any(c[3] not in OUTCOMES for c in contacts):  # pragma: no cover - validated by the model
        raise ConfigError(f"{loaded.source}: case {case.name!r}: unknown outcome")
    history = {**builder.build(contacts, now), **case.history}
    candidates = (catalog.control, *(a for a in case.expect if a != catalog.control))
    request = RequestInfo(case.request.channel, now, case.request.context)
    result = engine.evaluate(candidates, case.customer, request, history)
    failures: list[str] = []
    fired: dict[str, tuple[str, ...]] = {}
    for k, action in enumerate(candidates[1:], start=1):
        hits = [h for h in result.hits if h.action_id == action]
        fired[action] = tuple(h.rule_id for h in hits)
        want = _expectation(case.expect[action])
        got_by = tuple(h.rule_id for h in hits if h.mode == "enforce" and h.effect == "suppress")
        got_shadow = tuple(h.rule_id for h in hits if h.mode == "shadow")
        if want.suppressed is not None and bool(result.suppressed[k]) != want.suppressed:
            state = "suppressed" if result.suppressed[k] else "allowed"
            because = f" by {', '.join(got_by)}" if got_by else ""
            failures.append(
                f"{action}: expected {'suppressed' if want.suppressed else 'allowed'}, got {state}{because}"
            )
        if want.lever is not None and abs(float(result.lever[k]) - want.lever) > 1e-9:
            failures.append(f"{action}: expected lever {want.lever}, got {float(result.lever[k])}")
        if want.by is not None and set(got_by) != set(want.by):
            failures.append(f"{action}: expected suppression by {list(want.by)}, got {list(got_by)}")
        if want.shadow is not None and set(got_shadow) != set(want.shadow):
            failures.append(f"{action}: expected shadow hits {list(want.shadow)}, got {list(got_shadow)}")
    for hit in result.skipped:
        failures.append(f"{hit.action_id}: rule {hit.rule_id} could not be evaluated: {hit.error}")
    return CaseResult(loaded.source, case.name, not failures, tuple(failures), case.rules, fired)


def run_cases(
    ruleset: Ruleset,
    catalog: ActionCatalog,
    cases: Sequence[LoadedCase],
    fields: Mapping[str, FieldSpec] | None = None,
) -> list[CaseResult]:
    """Run every case; a case naming rules is evaluated with only those rules (engines are cached)."""
    engines: dict[tuple[str, ...] | None, RuleEngine] = {}
    out = []
    for loaded in cases:
        key = loaded.case.rules
        if key not in engines:
            subset = ruleset if key is None else ruleset.only(list(key))
            engines[key] = RuleEngine(subset, catalog, fields, eligibility=key is None)
        out.append(run_case(engines[key], loaded))
    return out


def coverage(ruleset: Ruleset, results: Sequence[CaseResult]) -> dict[str, tuple[bool, bool]]:
    """Per rule: (has a passing case where it fires, has a passing case where it does not), counting only
    cases that name the rule in ``rules``."""
    out = {r.id: (False, False) for r in ruleset.rules}
    for res in results:
        if not res.passed or res.rules is None:
            continue
        for rule_id in res.rules:
            fires = any(rule_id in ids for ids in res.fired.values())
            was = out.get(rule_id, (False, False))
            out[rule_id] = (was[0] or fires, was[1] or not fires)
    return out
