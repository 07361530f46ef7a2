"""Guardrail rules as data: the file format, its validation and compilation into a :class:`Ruleset`.

Product teams change rules without a code release, so a rule file is untrusted input: it is validated whole
(pydantic, ``extra="forbid"``), every condition is compiled once here, and any problem rejects the file with a
one-line :class:`ConfigError` naming the file, the rule and what is wrong, so the last good ruleset stays live.
Parameters (thresholds, windows, lists) live in a separate file per environment and are inlined into the
conditions as literals at load: they cost nothing per request and can never come from a request.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from nextbest.core.rules.compiler import FAR_FUTURE, FAR_PAST, Mode, OnError, Rule, compile_condition
from nextbest.errors import ConfigError

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr
ParamValue = Scalar | list[Scalar]

_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Limits on a rule file (rules are pasted into the explorer's what-if, from anyone with the key): generous for
# hand-written guardrails, small enough that compiling and evaluating them cannot pin a worker.
MAX_RULES = 500
MAX_WHEN = 4_000
MAX_NESTING = 32
MAX_MACRO_NESTING = 2


class LeverEffect(BaseModel):
    """Multiply the action's net value (``0.5`` halves it, ``1.5`` boosts it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    lever: float = Field(ge=0.0, le=1e6)


class RuleSpec(BaseModel):
    """One rule as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    when: str = Field(
        min_length=1, max_length=MAX_WHEN, description="CEL condition; the effect applies when it is true."
    )
    effect: Literal["suppress"] | LeverEffect
    message: str = Field(min_length=1, description="Shown in decisions for every action the rule hits.")
    mode: Mode = "enforce"
    valid_from: date | None = None
    valid_until: date | None = Field(None, description="Last day (UTC) the rule is active, inclusive.")
    on_error: OnError | None = Field(None, description="Default: fire for suppress rules (fail safe), else skip.")

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be lower_snake_case: a letter, then letters, digits or '_' (at most 63)")
        return value


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: str = Field(min_length=1, description="A human label; the served version is a content hash.")
    rules: tuple[RuleSpec, ...] = Field(max_length=MAX_RULES)


class ParamsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    environment: str | None = None
    params: dict[str, ParamValue] = Field(default_factory=dict)


def _day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def compile_rule(spec: RuleSpec, params: Mapping[str, object], source: str) -> Rule:
    label = f"{source}: rule {spec.id}: when"
    program, refs, conjuncts = compile_condition(label, spec.when, params)
    suppress = spec.effect == "suppress"
    return Rule(
        id=spec.id,
        message=spec.message,
        mode=spec.mode,
        suppress=suppress,
        lever=1.0 if isinstance(spec.effect, str) else spec.effect.lever,
        on_error=spec.on_error or ("fire" if suppress else "skip"),
        when=spec.when,
        program=program,
        refs=refs,
        conjuncts=conjuncts,
        start_ts=FAR_PAST if spec.valid_from is None else _day_start(spec.valid_from),
        end_ts=FAR_FUTURE if spec.valid_until is None else _day_start(spec.valid_until + timedelta(days=1)),
        origin=source,
    )


@dataclass(frozen=True)
class Ruleset:
    """Compiled rules plus the parameters they were compiled with. ``version`` is a content hash of both,
    logged with every decision; ``label`` is the file's own ``version`` string."""

    label: str
    version: str
    rules: tuple[Rule, ...]
    params: Mapping[str, Any]
    source: str = "<rules>"
    params_source: str = "<params>"
    specs: tuple[RuleSpec, ...] = ()

    @property
    def rule_count(self) -> int:
        return len(self.rules)

    def count(self, mode: Mode) -> int:
        return sum(r.mode == mode for r in self.rules)

    @cached_property
    def by_id(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    def only(self, rule_ids: list[str] | tuple[str, ...]) -> Ruleset:
        """The same ruleset restricted to some rules (rule test cases that isolate one rule)."""
        unknown = [i for i in rule_ids if i not in self.by_id]
        if unknown:
            raise ConfigError(f"{self.source}: unknown rule id(s) {unknown}")
        keep = tuple(r for r in self.rules if r.id in set(rule_ids))
        return Ruleset(self.label, f"{self.version}:{len(keep)}", keep, self.params, self.source, self.params_source)


def _validation_message(exc: ValidationError, raw: object) -> str:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    rule = ""
    if len(loc) >= 2 and loc[0] == "rules" and loc[1].isdigit() and isinstance(raw, dict):
        items = raw.get("rules") or []
        item = items[int(loc[1])] if int(loc[1]) < len(items) else None
        rid = item.get("id") if isinstance(item, dict) else None
        rule = f"rule {rid}: " if rid else f"rule #{int(loc[1]) + 1}: "
        loc = loc[2:]
    if first["type"] == "extra_forbidden":
        return f"{rule}unknown field {loc[-1]!r}"
    if loc and loc[0] == "effect":
        return f"{rule}effect: expected 'suppress' or {{lever: <number >= 0>}}"
    where = ".".join(p for p in loc if "[" not in p) or "file"
    return f"{rule}{where}: {str(first['msg']).removeprefix('Value error, ')}"


def parse_yaml(text: str, source: str) -> object:
    """``text`` parsed; whatever PyYAML raises (a syntax error, an impossible date, nesting deep enough to
    exhaust the stack) is a one-line :class:`ConfigError` naming ``source``, so a bad rule file is rejected
    like any other invalid one (the last good ruleset stays live)."""
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. 2026-02-30 as a date
        raise ConfigError(f"{source}: not valid YAML: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def _yaml(path: Path) -> object:
    if not path.is_file():
        raise ConfigError(f"{path}: file does not exist")
    text = path.read_text()
    try:
        return parse_yaml(text, str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        ids = re.findall(r"^\s*-?\s*id:\s*['\"]?([A-Za-z0-9_]+)", "\n".join(text.splitlines()[: line or 0]), re.M)
        rule = f"rule {ids[-1]}: " if ids else ""
        where = f"line {line}: " if line else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {rule}not valid YAML: {where}{problem}") from exc


def parse_params(raw: object, source: str = "<params>") -> dict[str, Any]:
    if raw is None:
        raw = {}
    try:
        params = ParamsFile.model_validate(raw).params
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if "[" not in str(p)) or "file"
        raise ConfigError(f"{source}: {where}: {first['msg']}") from exc
    bad = [name for name in params if not _ID.match(name)]
    if bad:
        raise ConfigError(f"{source}: parameter name {bad[0]!r} must be lower_snake_case")
    return params


def load_params(path: Path) -> dict[str, Any]:
    return parse_params(_yaml(path), str(path))


_MACROS = (".all", ".exists", ".exists_one", ".map", ".filter")


def _nesting(expression: str) -> tuple[int, int]:
    """The deepest bracket nesting of a CEL expression, and the deepest nesting of comprehension macros
    (``all``, ``exists``, ``exists_one``, ``map``, ``filter``: each multiplies the work of those inside it).
    One pass over the expression without whitespace; string literals are scanned too: a cheap bound, never an
    underestimate."""
    compact = "".join(expression.split())
    stack: list[bool] = []
    deepest = macros = inside = 0
    for i, ch in enumerate(compact):
        if ch in "([{":
            macro = ch == "(" and compact.endswith(_MACROS, max(0, i - 11), i)
            stack.append(macro)
            inside += macro
            deepest = max(deepest, len(stack))
            macros = max(macros, inside)
        elif ch in ")]}" and stack:
            inside -= stack.pop()
    return deepest, macros


def build_ruleset(
    document: object, params: Mapping[str, Any], *, source: str = "<rules>", params_source: str = "<params>"
) -> Ruleset:
    """Validate and compile a parsed rule document; every problem is a one-line :class:`ConfigError`."""
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: expected a mapping with 'version' and 'rules'")
    try:
        parsed = RuleFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_validation_message(exc, document)}") from exc
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    seen: set[str] = set()
    for spec in parsed.rules:
        if spec.id in seen:
            raise ConfigError(f"{source}: rule {spec.id}: duplicate rule id")
        seen.add(spec.id)
        if spec.valid_from and spec.valid_until and spec.valid_until < spec.valid_from:
            raise ConfigError(f"{source}: rule {spec.id}: valid_until is before valid_from")
        depth, macros = _nesting(spec.when)
        if depth > MAX_NESTING:
            raise ConfigError(f"{source}: rule {spec.id}: when: nested {depth} deep; at most {MAX_NESTING}")
        if macros > MAX_MACRO_NESTING:
            raise ConfigError(
                f"{source}: rule {spec.id}: when: comprehensions (all, exists, map, filter) nested {macros} deep; "
                f"at most {MAX_MACRO_NESTING}"
            )
    try:
        rules = tuple(compile_rule(spec, params, source) for spec in parsed.rules)
    except RecursionError:
        raise ConfigError(f"{source}: a when expression is nested too deeply to compile") from None
    payload = json.dumps({"rules": parsed.model_dump(mode="json"), "params": dict(params)}, sort_keys=True)
    version = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return Ruleset(parsed.version, version, rules, dict(params), source, params_source, parsed.rules)


def load_ruleset(rules_path: Path, params_path: Path | None = None) -> Ruleset:
    """Load a rule file and its parameter file; the whole file is rejected on the first problem."""
    params = load_params(params_path) if params_path is not None else {}
    return build_ruleset(
        _yaml(rules_path), params, source=str(rules_path), params_source=str(params_path or "<no params>")
    )
