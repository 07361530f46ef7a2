"""Load-time work of a :class:`~nextbest.core.rules.engine.RuleEngine`: what to evaluate, decided before any request.

When a ruleset is bound to a catalog, :func:`specialise` evaluates each rule's action-only (``static``)
conjuncts once per catalog action and inlines the action's attributes into the rest, leaving one dynamic
source per (rule, action) pair that can still fire. :func:`build_plan` then deduplicates the sources of a
candidate set and set of active rules into one list-valued program (a :class:`Plan`, which the engine caches)
and works out the smallest context that program reads; :func:`build_collector` indexes the plan's pairs by
element (a :class:`Collector`) the first time a single request evaluates it. Nothing here runs per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cel

from nextbest.core.features import FieldSpec
from nextbest.core.rules.compiler import Rule
from nextbest.core.rules.context import ContextCache
from nextbest.core.rules.syntax import first_line, inline, paths, references
from nextbest.core.rules.values import (
    CONVERT,
    ERROR,
    FALSE,
    TRUE,
    Converters,
    Failure,
    HistoryPaths,
    RequestInfo,
    RuleHit,
    customer_values,
    error_text,
    history_values,
    merge_paths,
    same,
)

PLAN_CACHE_SIZE = 256

# Per (rule, catalog action): the state of its static conjuncts and their error, and its dynamic source
# (None when nothing is left to evaluate per request, or when the static part already rules the pair out)
StaticStates = list[tuple[int, str | None]]
DynamicSources = list[str | None]


@dataclass
class Plan:
    """What to evaluate for one candidate set and set of active rules (cached; compiled once), and the
    smallest context that evaluation needs."""

    candidates: tuple[int, ...]  # catalog indices, in request order
    sources: list[str]  # unique dynamic elements
    program: cel.Program | None
    # per active rule with any possible hit: (rule index, [(candidate position, static state, static error, element)])
    rules: list[tuple[int, list[tuple[int, int, str | None, int]]]]
    variables: frozenset[str] = frozenset()
    customer: Converters = field(default_factory=list)
    history: HistoryPaths = None
    request: tuple[str, ...] | None = None
    programs: dict[Any, cel.Program] = field(default_factory=dict)  # fallback and batch programs, by key
    collector: Collector | None = None  # built on first use (single-request evaluation only)
    contexts: ContextCache = field(default_factory=ContextCache, repr=False, compare=False)

    def context(self, features: Mapping[str, Any], request: RequestInfo, history: Mapping[str, Any]) -> cel.Context:
        values: dict[str, Any] = {}
        if "customer" in self.variables:
            values["customer"] = customer_values(features, self.customer)
        if "request" in self.variables:
            req = request.as_map()
            values["request"] = req if self.request is None else {k: req[k] for k in self.request}
        if "history" in self.variables:
            values["history"] = history_values(history, self.history)
        return self.contexts.context(values)


# A pair that can fire: (position in plan order, candidate position, rule index, hit when the element is true
# (or always, for pairs without a dynamic part), state, static error)
_Pair = tuple[int, int, int, RuleHit, int, str | None]


@dataclass
class Collector:
    """A plan's pairs indexed by element, with their hits made once: a request then only looks at the
    elements that did not evaluate to false (most do) instead of every (rule, candidate) pair."""

    always: list[_Pair]  # pairs without a dynamic part: they fire whatever the request
    by_element: list[list[_Pair]]


def specialise(rule: Rule, action_maps: Sequence[dict[str, Any]], control: int) -> tuple[StaticStates, DynamicSources]:
    """``rule`` per catalog action: its static conjuncts evaluated (never applies to the ``control`` index),
    and the rest with the action's attributes inlined as literals."""
    static = [cel.compile(c.source) for c in rule.conjuncts if c.kind == "static"]
    states: StaticStates = []
    elements: DynamicSources = []
    for i, amap in enumerate(action_maps):
        state, error = (FALSE, None) if i == control else (TRUE, None)
        for program in static if state != FALSE else ():
            try:
                value: object = program.execute({"action": amap})
            except Exception as exc:
                value = Failure(first_line(str(exc)))
            if value is False:
                state, error = FALSE, None
                break
            if value is not True and error is None:
                state, error = ERROR, error_text(value)
        states.append((state, error))
        parts = [
            inline(c.source, "action", amap) if c.kind == "mixed" else c.source
            for c in rule.conjuncts
            if c.kind != "static"
        ]
        elements.append(None if state == FALSE or not parts else " && ".join(f"({p})" for p in parts))
    return states, elements


def converters_for(fields: Mapping[str, FieldSpec], names: Sequence[str]) -> Converters:
    """How to convert each named customer feature into CEL (unknown names pass through unchanged)."""
    return [(n, CONVERT[fields[n].dtype] if n in fields else same) for n in names]


def build_plan(
    cands: tuple[int, ...],
    active: tuple[int, ...],
    static: Sequence[StaticStates],
    dynamic: Sequence[DynamicSources],
    fields: Mapping[str, FieldSpec],
) -> Plan:
    """The plan of candidate catalog indices ``cands`` under the ``active`` rules, from the per-rule results of
    :func:`specialise`; ``fields`` are the customer features the ruleset may read."""
    index: dict[str, int] = {}
    rules = []
    for r in active:
        pairs = []
        for k, a in enumerate(cands):
            state, error = static[r][a]
            if state == FALSE:
                continue
            source = dynamic[r][a]
            pairs.append((k, state, error, -1 if source is None else index.setdefault(source, len(index))))
        if pairs:
            rules.append((r, pairs))
    sources = list(index)
    program = cel.compile("[" + ", ".join(f"({s})" for s in sources) + "]") if sources else None
    plan = Plan(cands, sources, program, rules)
    customer: set[str] = set()
    request: set[str] | None = set()
    history: HistoryPaths = {}
    for source in sources:
        refs = references(source)
        plan.variables |= refs.variables
        customer |= set(fields) if "customer" in refs.dynamic else refs.fields["customer"]
        request = None if request is None or "request" in refs.dynamic else request | refs.fields["request"]
        history = merge_paths(history, paths(source, "history"))
    plan.customer = converters_for(fields, sorted(customer))
    plan.request = None if request is None else tuple(sorted(request))
    plan.history = history
    return plan


def build_collector(rules: Sequence[Rule], candidates: tuple[str, ...], plan: Plan) -> Collector:
    """``plan``'s pairs by element, their hits made for ``candidates`` (the action ids of the plan's
    candidates) from the engine's ``rules``."""
    collector = Collector([], [[] for _ in plan.sources])
    position = 0
    for r, pairs in plan.rules:
        rule = rules[r]
        for k, state, static_error, e in pairs:
            error = static_error if e < 0 or state != TRUE else None
            hit = RuleHit(rule.id, candidates[k], rule.effect, rule.message, rule.mode, error, rule.lever)
            pair = (position, k, r, hit, state, static_error)
            (collector.always if e < 0 else collector.by_element[e]).append(pair)
            position += 1
    return collector
