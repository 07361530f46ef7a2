"""One decision, assembled from the pure parts: candidates, guardrails, arbitration, exploration.

The service, batch decisioning and rule simulation all call :class:`DecisionPolicy`, so a decision replayed
offline is the decision served online. The policy object bundles everything that changes together on a hot
reload (catalog, compiled rules, exploration settings); swapping one reference swaps all of it atomically.

Fallback policy (``DecisionPolicy.fallback``): when features or models are unavailable the decision is the
control action (``no_action``) with probability 1, ``degraded=True`` and the reason. Doing nothing cannot
break a consent, contact-pressure or open-ticket guardrail whose inputs are missing, and it is the baseline
every uplift is measured against: its incremental value is zero by definition, never negative.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from nextbest.core.arbitration import ScoreBreakdown, choose, rank, score_breakdown
from nextbest.core.catalog import ActionCatalog
from nextbest.core.contact import HistoryBuilder
from nextbest.core.exploration import Exploration, Served, in_control_group, serve
from nextbest.core.features import FieldSpec
from nextbest.core.rules import Ruleset
from nextbest.core.rules.engine import RuleEngine
from nextbest.core.rules.values import RequestInfo, RuleEvaluation, RuleHit
from nextbest.errors import ConfigError, DataError


@dataclass(frozen=True)
class DecisionRequest:
    """What the caller asks. ``now`` is Unix seconds (UTC); ``candidates`` optionally narrows the channel's
    actions; ``context`` is visible to rules as ``request.context`` (never used for thresholds)."""

    customer_id: str | int
    channel: str
    now: int
    decision_id: str
    candidates: tuple[str, ...] | None = None
    context: Mapping[str, str | int | float | bool] = field(default_factory=dict)


class CandidateScore(NamedTuple):
    """One candidate's scores (a named tuple: immutable, and built 20 times per decision at a tenth of the
    cost of a frozen dataclass)."""

    action: str
    rank: int  # 1 = best; ineligible candidates rank after every eligible one
    eligible: bool
    propensity: float
    uplift: float
    value: float
    cost: float
    lever: float  # catalog lever × rule levers
    net_value: float
    average_effect: bool = False  # the action's average effect stood in for the customer's own (overlap guard)


class Suppression(NamedTuple):
    action: str
    rule_ids: tuple[str, ...]
    messages: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    decision_id: str
    customer_id: str | int
    channel: str
    action: str
    probability: float  # of serving ``action`` under the logging policy (exploration included)
    greedy_action: str  # what arbitration alone chose
    explored: bool
    control: bool
    degraded: bool
    reason: str | None
    candidates: tuple[CandidateScore, ...]  # ranked
    suppressed: tuple[Suppression, ...]
    shadow: tuple[RuleHit, ...]  # shadow-mode hits: reported, never applied
    rule_errors: tuple[RuleHit, ...]  # conditions that could not be evaluated (applied or skipped)
    ruleset_version: str
    catalog_version: str


class DecisionPolicy:
    """Catalog + compiled rules + exploration settings: everything a decision needs besides its inputs."""

    def __init__(
        self,
        catalog: ActionCatalog,
        ruleset: Ruleset,
        exploration: Exploration | None = None,
        fields: Mapping[str, FieldSpec] | None = None,
    ) -> None:
        self.catalog = catalog
        self.ruleset = ruleset
        self.exploration = exploration or Exploration()
        self.engine = RuleEngine(ruleset, catalog, fields)
        self.history = HistoryBuilder(catalog.channels, catalog.control)
        self.empty_history = self.history.empty()
        self._candidates: dict[tuple[str, tuple[str, ...] | None], tuple[str, ...]] = {}
        self._levers: dict[tuple[str, ...], np.ndarray] = {}

    def candidates(self, channel: str, subset: tuple[str, ...] | list[str] | None = None) -> tuple[str, ...]:
        """The channel's actions (catalog order), narrowed to ``subset`` if given; the control is always in.
        Score models in this order."""
        key = (channel, None if subset is None else tuple(subset))
        found = self._candidates.get(key)
        if found is None:
            base = self.catalog.for_channel(channel)
            if subset is not None:
                unknown = sorted({a for a in subset if a not in self.catalog.by_id})
                if unknown:
                    known = list(self.catalog.ids)
                    raise ConfigError(f"unknown candidate action(s) {unknown}; the catalog has {known}")
                keep = set(subset) | {self.catalog.control}
                base = tuple(a for a in base if a in keep)
            found = self._candidates[key] = base
        return found

    def levers(self, cands: tuple[str, ...]) -> np.ndarray:
        """Catalog levers of a candidate set (rule levers multiply these)."""
        found = self._levers.get(cands)
        if found is None:
            found = self._levers[cands] = self.catalog.levers[list(self.engine.indices(cands))]
        return found

    def rules(
        self, request: DecisionRequest, features: Mapping[str, Any], history: Mapping[str, Any] | None = None
    ) -> RuleEvaluation:
        info = RequestInfo(request.channel, request.now, request.context)
        cands = self.candidates(request.channel, request.candidates)
        return self.engine.evaluate(cands, features, info, self.empty_history if history is None else history)

    def decide(
        self,
        request: DecisionRequest,
        features: Mapping[str, Any],
        history: Mapping[str, Any] | None,
        p_convert: np.ndarray,
        expected_revenue: np.ndarray,
        margin: float = 0.0,
        scale: float | None = None,
        average_effect: np.ndarray | None = None,
    ) -> Decision:
        """``features``: served values by name (None when missing); ``history``: a map from
        :class:`HistoryBuilder` (None = never contacted); scores are (K,) in :meth:`candidates` order;
        ``margin``: the model's decision margin (act only when the net value exceeds it); ``scale``: the
        model's value scale, for value-aware exploration (None: uniform exploration); ``average_effect``: (K,)
        where the model scored an action by its average effect (``PolicyModel.score``; None: nowhere)."""
        cands = self.candidates(request.channel, request.candidates)
        p = _scores(p_convert, len(cands), "p_convert")
        rev = _scores(expected_revenue, len(cands), "expected_revenue")
        rules = self.rules(request, features, history)
        mask = None if average_effect is None else np.asarray(average_effect, dtype=bool).reshape(1, len(cands))
        scores = score_breakdown(
            self.catalog, cands, p[None, :], rev[None, :], self.levers(cands) * rules.lever, average_effect=mask
        )
        eligible = ~rules.suppressed
        eligible[scores.control_index] = True
        greedy = int(choose(scores.net_value, eligible[None, :], scores.control_index, margin)[0])
        ex = self.exploration
        ctrl = in_control_group(request.customer_id, ex.control_share, ex.control_salt)
        served = serve(
            greedy,
            eligible,
            ex.rate,
            request.decision_id,
            salt=ex.explore_salt,
            control=ctrl,
            control_index=scores.control_index,
            weights=None if ctrl or ex.rate <= 0 else ex.weights(scores.net_value, eligible[None, :], scale),
        )
        return self.assemble(request, cands, scores, 0, eligible, rules, served)

    def assemble(
        self,
        request: DecisionRequest,
        cands: tuple[str, ...],
        scores: ScoreBreakdown,
        row: int,
        eligible: np.ndarray,
        rules: RuleEvaluation,
        served: Served,
    ) -> Decision:
        """The result object for row ``row`` of ``scores`` (shared by single and batch decisioning)."""
        order = rank(scores.net_value[row : row + 1], eligible[None, :])[0].tolist()
        # Python scalars in one conversion per array (the per-request path: no per-element numpy indexing)
        ok = eligible.tolist()
        p, u, v = scores.propensity[row].tolist(), scores.uplift[row].tolist(), scores.value[row].tolist()
        c, lv, net = scores.cost[row].tolist(), scores.lever[row].tolist(), scores.net_value[row].tolist()
        ae = [False] * len(cands) if scores.average_effect is None else scores.average_effect[row].tolist()
        ranked = tuple(
            CandidateScore(cands[k], r + 1, bool(ok[k]), p[k], u[k], v[k], c[k], lv[k], net[k], ae[k])
            for r, k in enumerate(order)
        )
        return Decision(
            decision_id=request.decision_id,
            customer_id=request.customer_id,
            channel=request.channel,
            action=cands[served.index],
            probability=float(served.probability),
            greedy_action=cands[served.greedy],
            explored=served.explored,
            control=served.control,
            degraded=False,
            reason=None,
            candidates=ranked,
            suppressed=_suppressions(rules),
            shadow=rules.shadow,
            rule_errors=tuple(h for h in (*rules.hits, *rules.skipped) if h.error is not None),
            ruleset_version=self.ruleset.version,
            catalog_version=self.catalog.content_hash,
        )

    def fallback(self, request: DecisionRequest, reason: str, rules: RuleEvaluation | None = None) -> Decision:
        """A degraded decision: the control action with probability 1 (see the module docstring). Pass
        ``rules`` when features were available, so the response still explains what was suppressed."""
        control = self.catalog.control
        return Decision(
            decision_id=request.decision_id,
            customer_id=request.customer_id,
            channel=request.channel,
            action=control,
            probability=1.0,
            greedy_action=control,
            explored=False,
            control=False,
            degraded=True,
            reason=reason,
            candidates=(),
            suppressed=() if rules is None else _suppressions(rules),
            shadow=() if rules is None else rules.shadow,
            rule_errors=(),
            ruleset_version=self.ruleset.version,
            catalog_version=self.catalog.content_hash,
        )


def _scores(values: np.ndarray, k: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.shape != (k,):
        raise DataError(f"{name} must have one score per candidate ({k}); got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise DataError(f"{name} contains non-finite scores")
    return arr


def _suppressions(rules: RuleEvaluation) -> tuple[Suppression, ...]:
    """Suppressed actions in candidate order, each with every enforcing rule that hit it (in rule order)."""
    by_action: dict[str, list[RuleHit]] = {}
    for h in rules.hits:
        if h.mode == "enforce" and h.effect == "suppress":
            found = by_action.get(h.action_id)
            if found is None:
                by_action[h.action_id] = [h]
            else:
                found.append(h)
    if not by_action:
        return ()
    out = []
    for a in rules.action_ids:
        hits = by_action.get(a)
        if hits is not None:
            if len(hits) == 1:
                out.append(Suppression(a, (hits[0].rule_id,), (hits[0].message,)))
            else:
                out.append(Suppression(a, tuple([h.rule_id for h in hits]), tuple([h.message for h in hits])))
    return tuple(out)
