"""Static checks of a loaded ruleset against the feature service and the catalog (``nextbest rules check``).

Loading already rejects what cannot run at all (syntax, unknown variables, parameters, action, request and
history fields). What remains needs outside knowledge: whether ``customer.<feature>`` exists in the decision
FeatureService, whether the types line up (``customer.tier > 3`` is a runtime error in CEL, and
``customer.app_user == true`` is silently always false), and, on a sample of real customers, whether a rule
can ever fire and whether every action can ever be served. Types are checked by evaluating each comparison
on its own against typed placeholder values, since CEL here has no static type checker.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cel

from nextbest.core.catalog import ActionCatalog
from nextbest.core.contact import HistoryBuilder
from nextbest.core.features import FieldSpec
from nextbest.core.rules import Ruleset
from nextbest.core.rules.batch import evaluate_batch
from nextbest.core.rules.compiler import Rule, eligibility_rules
from nextbest.core.rules.engine import RuleEngine
from nextbest.core.rules.syntax import Token, first_line, references, split_leaves, tokenize
from nextbest.core.rules.values import RequestInfo, action_map
from nextbest.errors import ConfigError

_PLACEHOLDER = {"int64": 1, "float64": 1.5, "string": "x"}
_NUMERIC = frozenset({"int", "uint", "double"})


@dataclass(frozen=True)
class Issue:
    level: Literal["error", "warning"]
    source: str
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        rule = f"rule {self.rule_id}: " if self.rule_id else ""
        return f"{self.source}: {rule}{self.message}"


@dataclass(frozen=True)
class CheckReport:
    issues: tuple[Issue, ...]

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.level == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.level == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        """For hot reload: refuse a ruleset with errors, naming the first one."""
        if self.errors:
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise ConfigError(f"{self.errors[0]}{more}")


def _placeholders(ruleset: Ruleset, fields: Mapping[str, FieldSpec], catalog: ActionCatalog) -> dict[str, Any]:
    history = HistoryBuilder(catalog.channels, catalog.control).empty()
    history["days_since_action"] = dict.fromkeys(catalog.ids, 1.0)
    return {
        "customer": {name: _PLACEHOLDER[spec.dtype] for name, spec in fields.items()},
        "request": RequestInfo(catalog.channels[0], 1_764_000_000, {}).as_map(),
        "history": history,
        "params": dict(ruleset.params),
    }


def _top_level_equality(tokens: list[Token]) -> int | None:
    """Index of the single top-level ``==``/``!=`` token, if there is exactly one."""
    depth, found = 0, []
    for i, tok in enumerate(tokens):
        if tok.kind != "op":
            continue
        if tok.text in ("(", "[", "{"):
            depth += 1
        elif tok.text in (")", "]", "}"):
            depth -= 1
        elif depth == 0 and tok.text in ("==", "!="):
            found.append(i)
    return found[0] if len(found) == 1 else None


def _type_problem(leaf: str, ctx: dict[str, Any], fields: Mapping[str, FieldSpec]) -> str | None:
    """A type error evaluating ``leaf``, or an equality between values of different types."""
    typed = sorted(f"customer.{n} is {fields[n].dtype}" for n in references(leaf).fields["customer"] if n in fields)
    hint = f" ({', '.join(typed)})" if typed else ""
    try:
        cel.compile(leaf).execute(ctx)
    except TypeError as exc:
        return f"type mismatch in `{leaf}`: {first_line(str(exc)).split('.')[0]}{hint}"
    except Exception:
        return None  # missing keys and the like are not type problems
    tokens = tokenize(leaf)
    cut = _top_level_equality(tokens)
    if cut is None:
        return None
    try:
        left = cel.evaluate(f"type({leaf[: tokens[cut].start]})", ctx)
        right = cel.evaluate(f"type({leaf[tokens[cut].end :]})", ctx)
    except Exception:
        return None
    if left == right or {left, right} <= _NUMERIC or "null_type" in (left, right):
        return None
    return f"type mismatch in `{leaf}`: compares {left} with {right}, which is never equal{hint}"


def _static_issues(rule: Rule, source: str, fields: Mapping[str, FieldSpec], ctxs: list[dict[str, Any]]) -> list[Issue]:
    issues = []
    for name in sorted(rule.refs.fields["customer"] - set(fields)):
        close = difflib.get_close_matches(name, list(fields), n=1)
        hint = f"; did you mean customer.{close[0]}?" if close else ""
        issues.append(Issue("error", source, rule.id, f"unknown feature customer.{name}{hint}"))
    if issues:
        return issues
    for leaf in split_leaves(rule.when):
        problem = next((p for ctx in ctxs if (p := _type_problem(leaf, ctx, fields)) is not None), None)
        if problem is not None:
            issues.append(Issue("error", source, rule.id, problem))
    return issues


def check(
    ruleset: Ruleset,
    fields: Mapping[str, FieldSpec],
    catalog: ActionCatalog,
    samples: Sequence[Mapping[str, Any]] | None = None,
    *,
    histories: Sequence[Mapping[str, Any]] | None = None,
    now: int | None = None,
) -> CheckReport:
    """Errors: unknown features, type mismatches (rules and catalog eligibility). Warnings: unused
    parameters, rules inactive at ``now`` (default: the current time), and with ``samples`` (served feature
    dicts, optional ``histories`` alongside) rules that never fire and actions no sample customer can get."""
    now = int(time.time()) if now is None else int(now)
    base = _placeholders(ruleset, fields, catalog)
    ctxs = [{**base, "action": action_map(a)} for a in catalog.actions if a.id != catalog.control]
    issues: list[Issue] = []
    for rule in ruleset.rules:
        issues += _static_issues(rule, ruleset.source, fields, ctxs)
    for rule in eligibility_rules(catalog, ruleset.params):
        issues += [Issue(i.level, "catalog", i.rule_id, i.message) for i in _static_issues(rule, "", fields, ctxs)]
    used = {p for r in ruleset.rules for p in r.refs.fields["params"]}
    if any("params" in r.refs.dynamic for r in ruleset.rules):
        used = set(ruleset.params)
    for name in sorted(set(ruleset.params) - used):
        issues.append(Issue("warning", ruleset.params_source, None, f"parameter {name} is not used by any rule"))
    for rule in ruleset.rules:
        if rule.mode != "off" and not rule.active(now):
            issues.append(Issue("warning", ruleset.source, rule.id, "not active now (outside its validity dates)"))
    if samples and not [i for i in issues if i.level == "error"]:
        issues += _sample_issues(ruleset, fields, catalog, samples, histories, now)
    return CheckReport(tuple(issues))


def _sample_issues(
    ruleset: Ruleset,
    fields: Mapping[str, FieldSpec],
    catalog: ActionCatalog,
    samples: Sequence[Mapping[str, Any]],
    histories: Sequence[Mapping[str, Any]] | None,
    now: int,
) -> list[Issue]:
    engine = RuleEngine(ruleset, catalog, fields)
    names = sorted({k for s in samples for k in s})
    columns = {name: [s.get(name) for s in samples] for name in names}
    fired: set[str] = set()
    receivable: set[str] = set()
    blockers: dict[str, dict[str, int]] = {}
    for channel in catalog.channels:
        cands = catalog.for_channel(channel)
        result = evaluate_batch(engine, cands, columns, RequestInfo(channel, now), histories, len(samples))
        for p in range(len(result.pair_rule)):
            rule = result.rules[int(result.pair_rule[p])]
            count = int(result.fired[:, p].sum())
            if count:
                fired.add(rule.id)
                if rule.mode == "enforce" and rule.suppress:
                    action = cands[int(result.pair_candidate[p])]
                    blockers.setdefault(action, {})[rule.id] = blockers.get(action, {}).get(rule.id, 0) + count
        for k, action in enumerate(cands):
            if not result.suppressed[:, k].all():
                receivable.add(action)
    issues = []
    n = len(samples)
    for rule in ruleset.rules:
        if rule.mode != "off" and rule.active(now) and rule.id not in fired:
            issues.append(Issue("warning", ruleset.source, rule.id, f"never fires on the {n} sample customers"))
    for action in catalog.treatments:
        if action not in receivable:
            top = sorted(blockers.get(action, {}).items(), key=lambda kv: -kv[1])[:3]
            why = ", ".join(rule_id for rule_id, _ in top) or "no candidate channel"
            message = f"action {action} is suppressed for every one of the {n} sample customers (by {why})"
            issues.append(Issue("warning", ruleset.source, None, message))
    return issues
