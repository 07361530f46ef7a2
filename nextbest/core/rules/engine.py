"""Evaluating a ruleset for one request, fast enough to sit inside a sub-millisecond decision.

Converting Python values into CEL costs about a microsecond per map entry and every ``execute`` call has a
fixed overhead, so a naive loop (rules × candidates, each with its own context) costs milliseconds. Instead,
when a :class:`RuleEngine` is bound to a catalog, every rule's top-level ``&&`` conjuncts that read only the
action are evaluated once per catalog action; the rest is specialised per action by inlining the action's
attributes as literals, deduplicated, and compiled, per candidate set, into one list-valued program (that
load-time work and the plans it makes live in :mod:`nextbest.core.rules.plan`; this module caches the plans and
evaluates them). A request then fills one small context (only the features and history fields some rule reads;
reused per thread, converting only what changed: :mod:`nextbest.core.rules.context`) and runs that program
once. Because CEL's ``&&`` is commutative (false wins over an error, an error over true), splitting changes no
result; :meth:`RuleEngine.evaluate_naive` is the plain per-(rule, action) reference the tests compare against.
If the combined program fails (a rule errs), each rule and then each element is evaluated on its own, so one
broken rule never affects another; its ``on_error`` then decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cel
import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.core.features import FieldSpec, all_fields
from nextbest.core.rules import Ruleset
from nextbest.core.rules.compiler import Rule, eligibility_rules
from nextbest.core.rules.plan import (
    PLAN_CACHE_SIZE,
    DynamicSources,
    Plan,
    StaticStates,
    build_collector,
    build_plan,
    converters_for,
    specialise,
)
from nextbest.core.rules.syntax import first_line
from nextbest.core.rules.values import (
    FALSE,
    TRUE,
    Failure,
    RequestInfo,
    RuleEvaluation,
    RuleHit,
    action_map,
    customer_values,
    error_text,
)

__all__ = ["Plan", "RuleEngine"]


class RuleEngine:
    """A ruleset bound to a catalog (plus the catalog's eligibility conditions). Rules never apply to the
    control action: doing nothing is always a valid answer."""

    def __init__(
        self,
        ruleset: Ruleset,
        catalog: ActionCatalog,
        fields: Mapping[str, FieldSpec] | None = None,
        eligibility: bool = True,
    ) -> None:
        self.ruleset = ruleset
        self.catalog = catalog
        self.fields = dict(fields if fields is not None else all_fields())
        self.rules: tuple[Rule, ...] = (
            *(r for r in ruleset.rules if r.mode != "off"),
            *(eligibility_rules(catalog, ruleset.params) if eligibility else ()),
        )
        self.control = catalog.index[catalog.control]
        self.action_maps = [action_map(a) for a in catalog.actions]
        self._static: list[StaticStates] = []
        self._dynamic: list[DynamicSources] = []
        for rule in self.rules:
            states, elements = specialise(rule, self.action_maps, self.control)
            self._static.append(states)
            self._dynamic.append(elements)
        # what a hit of each rule does: (skipped when its condition erred, enforced, suppresses, lever)
        self._effects = [(r.on_error == "skip", r.mode == "enforce", r.suppress, r.lever) for r in self.rules]
        self._all_converters = converters_for(self.fields, list(self.fields))
        self._plans: dict[tuple[tuple[int, ...], tuple[int, ...]], Plan] = {}
        self._indices: dict[tuple[str, ...], tuple[int, ...]] = {}
        self._active: dict[int, tuple[int, ...]] = {}
        self._element_programs: dict[str, cel.Program] = {}

    @property
    def version(self) -> str:
        return self.ruleset.version

    def applicable_actions(self, rule_index: int) -> tuple[str, ...]:
        """Catalog actions rule ``rule_index`` (of :attr:`rules`) can apply to: those its action-only conditions
        do not rule out at load (never the control)."""
        return tuple(
            a.id for a, (state, _) in zip(self.catalog.actions, self._static[rule_index], strict=True) if state != FALSE
        )

    # Plans (built in nextbest.core.rules.plan, cached here) -------------------------------------------------------
    def indices(self, candidates: tuple[str, ...]) -> tuple[int, ...]:
        found = self._indices.get(candidates)
        if found is None:
            self.catalog.require(candidates)
            found = self._indices[candidates] = tuple(self.catalog.index[a] for a in candidates)
        return found

    def active(self, now: int) -> tuple[int, ...]:
        """Rules active at ``now``; validity dates are whole UTC days, so the answer is cached per day."""
        day = int(now) // 86_400
        found = self._active.get(day)
        if found is None:
            if len(self._active) >= PLAN_CACHE_SIZE:
                self._active.clear()
            found = self._active[day] = tuple(i for i, r in enumerate(self.rules) if r.active(day * 86_400))
        return found

    def plan(self, candidates: tuple[str, ...], now: int) -> Plan:
        key = (self.indices(candidates), self.active(now))
        found = self._plans.get(key)
        if found is None:
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.clear()
            found = self._plans[key] = build_plan(*key, self._static, self._dynamic, self.fields)
        return found

    # Evaluation ------------------------------------------------------------------------------------------------
    def evaluate(
        self,
        candidates: tuple[str, ...],
        features: Mapping[str, Any],
        request: RequestInfo,
        history: Mapping[str, Any],
    ) -> RuleEvaluation:
        plan = self.plan(candidates, request.now)
        results: Sequence[object] = ()
        if plan.program is not None:
            results = self.run(plan, plan.context(features, request, history))
        return self._collect_fast(candidates, plan, results)

    def run(self, plan: Plan, ctx: cel.Context) -> Sequence[object]:
        """Element values of a plan (True, False, or a failure/non-bool for elements that could not be
        evaluated)."""
        assert plan.program is not None
        try:
            out: Sequence[object] = plan.program.execute(ctx)
            return out
        except Exception:
            return self._fallback(plan, ctx)

    def _fallback(self, plan: Plan, ctx: cel.Context) -> list[object]:
        values: list[object] = [None] * len(plan.sources)
        for r, pairs in plan.rules:
            elements = sorted({e for _, _, _, e in pairs if e >= 0})
            if not elements:
                continue
            program = plan.programs.get(r)
            if program is None:
                program = plan.programs[r] = cel.compile(
                    "[" + ", ".join(f"({plan.sources[e]})" for e in elements) + "]"
                )
            try:
                for e, v in zip(elements, program.execute(ctx), strict=True):
                    values[e] = v
                continue
            except Exception:
                pass
            for e in elements:
                values[e] = self.element(plan.sources[e], ctx)
        return values

    def element(self, source: str, ctx: cel.Context | dict[str, Any]) -> object:
        program = self._element_programs.get(source)
        if program is None:
            program = self._element_programs[source] = cel.compile(source)
        try:
            value: object = program.execute(ctx)
            return value
        except Exception as exc:
            return Failure(first_line(str(exc)))

    def _collect_fast(self, candidates: tuple[str, ...], plan: Plan, results: Sequence[object]) -> RuleEvaluation:
        """:meth:`_collect` over the elements that fired only; same hits, same order, same arrays."""
        collector = plan.collector
        if collector is None:
            collector = plan.collector = build_collector(self.rules, candidates, plan)
        fired: list[tuple[int, int, int, RuleHit]] = [(p, k, r, hit) for p, k, r, hit, _, _ in collector.always]
        by_element = collector.by_element
        for e, value in enumerate(results):
            if value is False:
                continue
            for p, k, r, hit, state, _ in by_element[e]:
                if value is not True and state == TRUE:  # the condition erred for this request
                    rule = self.rules[r]
                    hit = RuleHit(rule.id, hit.action_id, rule.effect, rule.message, rule.mode, error_text(value),
                                  rule.lever)  # fmt: skip
                fired.append((p, k, r, hit))
        fired.sort()
        return self._evaluation(candidates, ((k, r, hit) for _, k, r, hit in fired))

    def _evaluation(self, candidates: tuple[str, ...], fired: Iterable[tuple[int, int, RuleHit]]) -> RuleEvaluation:
        """Apply the hits that fired, in rule order: (candidate index, rule index, hit) each."""
        n = len(candidates)
        suppressed, lever = [False] * n, [1.0] * n
        hits: list[RuleHit] = []
        skipped: list[RuleHit] = []
        effects = self._effects
        for k, r, hit in fired:
            skip, enforce, suppress, factor = effects[r]
            if skip and hit.error is not None:
                skipped.append(hit)
                continue
            hits.append(hit)
            if enforce:
                if suppress:
                    suppressed[k] = True
                else:
                    lever[k] *= factor
        return RuleEvaluation(
            candidates, np.array(suppressed, bool), np.array(lever), tuple(hits), tuple(skipped), self.version
        )

    def _collect(
        self,
        candidates: tuple[str, ...],
        plan_rules: list[tuple[int, list[tuple[int, int, str | None, int]]]],
        results: Sequence[object],
    ) -> RuleEvaluation:
        fired: list[tuple[int, int, RuleHit]] = []
        for r, pairs in plan_rules:
            rule = self.rules[r]
            for k, state, static_error, e in pairs:
                error = static_error
                if e >= 0:
                    value = results[e]
                    if value is False:
                        continue
                    if state == TRUE:
                        error = None if value is True else error_text(value)
                hit = RuleHit(rule.id, candidates[k], rule.effect, rule.message, rule.mode, error, rule.lever)
                fired.append((k, r, hit))
        return self._evaluation(candidates, fired)

    def evaluate_naive(
        self,
        candidates: tuple[str, ...],
        features: Mapping[str, Any],
        request: RequestInfo,
        history: Mapping[str, Any],
    ) -> RuleEvaluation:
        """The reference semantics: every active rule's condition as written, per candidate, full context."""
        customer = customer_values(features, self._all_converters)
        base = {"customer": customer, "request": request.as_map(), "history": dict(history)}
        base["params"] = dict(self.ruleset.params)
        rules: list[tuple[int, list[tuple[int, int, str | None, int]]]] = []
        for r, rule in enumerate(self.rules):
            if not rule.active(request.now):
                continue
            pairs: list[tuple[int, int, str | None, int]] = [
                (k, TRUE, None, -1) for k, a in enumerate(candidates) if self.catalog.index[a] != self.control
            ]
            rules.append((r, pairs))
        results: list[object] = []
        for r, pairs in rules:
            for i, (k, _, _, _) in enumerate(pairs):
                amap = self.action_maps[self.catalog.index[candidates[k]]]
                try:
                    results.append(self.rules[r].program.execute({**base, "action": amap}))
                except Exception as exc:
                    results.append(Failure(first_line(str(exc))))
                pairs[i] = (k, TRUE, None, len(results) - 1)
        return self._collect(candidates, rules, results)
