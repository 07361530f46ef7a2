"""What-if simulation of a rule change: replay decisions under the live and a proposed ruleset and compare.

A product team wants to know what a rule change does *before* it goes live. Model scores do not depend on
rules, so each logged decision can be decided again, with the same scores, features and contact history, by
both policies: every difference between the two replays is caused by the rules alone, and every row is a
paired comparison. The replay uses :func:`nextbest.core.decision_batch.decide_batch`, the code batch
decisioning runs, so a replayed decision is the decision the service would make.

What is reported: how many greedy decisions change and between which actions (a transition matrix), each
rule's hit rate under both rulesets (shadow hits included: shadow is how a rule is trialled), and the change
in value (:mod:`nextbest.core.simulation_value`): off-policy from the logged probabilities when outcomes are
known, model-based otherwise.

Rows are grouped by what a batch shares (channel, candidates, request time, context, margin). Rules see the
request time only through ``request.now``/``hour``/``weekday`` and whole-day validity dates, so unless some
rule reads ``request.now`` itself, rows in the same UTC hour share one request time: exact, and fast.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextbest.core.decision import DecisionPolicy
from nextbest.core.decision_batch import decide_batch
from nextbest.core.ope import Estimate
from nextbest.core.simulation_value import value_change
from nextbest.errors import ConfigError, DataError

ContextValue = str | int | float | bool


@dataclass(frozen=True)
class LoggedDecision:
    """One decision to replay: its inputs as served and, when known, what happened.

    ``candidates`` are the scored actions (the control included) and ``p_convert``/``expected_revenue`` their
    model scores in that order; ``history`` is the contact history at ``now`` (None: never contacted).
    ``action``/``probability``/``reward`` (revenue minus the served action's cost) come from the log and are
    None for a sampled customer; ``greedy_action`` is what arbitration chose when it was logged."""

    customer_id: int | str
    channel: str
    now: int
    candidates: tuple[str, ...]
    p_convert: np.ndarray
    expected_revenue: np.ndarray
    features: Mapping[str, Any]
    history: Mapping[str, Any] | None = None
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    margin: float = 0.0
    decision_id: str = ""
    action: str | None = None
    probability: float | None = None
    reward: float | None = None
    greedy_action: str | None = None
    costs: np.ndarray | None = None  # (K,) logged cost per candidate; default: the catalog's


@dataclass(frozen=True)
class RuleRate:
    """How many replayed decisions a rule fired on (any candidate, shadow hits included), per policy."""

    rule_id: str
    live_mode: str  # enforce | shadow | off | absent
    proposed_mode: str
    live_hits: int
    proposed_hits: int


@dataclass(frozen=True)
class Replay:
    """One policy's replay: the greedy action (catalog index) and, per rule, the rows it fired on."""

    greedy: np.ndarray  # (n,)
    hits: dict[str, np.ndarray]  # rule id -> (n,) bool


@dataclass(frozen=True)
class SimulationReport:
    source: str  # "log" (logged decisions with outcomes) or "customers" (sampled, no outcomes)
    n: int
    actions: tuple[str, ...]  # catalog order; rows and columns of ``transitions``
    live_version: str
    proposed_version: str
    transitions: np.ndarray  # (A, A) counts: live greedy action (row) -> proposed greedy action (column)
    rules: tuple[RuleRate, ...]
    basis: str  # "off-policy" or "model"
    change: dict[str, Estimate]  # proposed minus live, per method
    live_value: dict[str, Estimate]
    proposed_value: dict[str, Estimate]
    replay_agreement: float | None  # share of logged greedy actions the live replay reproduces
    skipped: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    currency: str = "EUR"

    @property
    def changed(self) -> int:
        return int(self.n - np.trace(self.transitions))

    @property
    def headline(self) -> Estimate:
        """The estimate to lead with: doubly robust off-policy, or the model-based one without outcomes."""
        return self.change["dr" if self.basis == "off-policy" else "model"]

    def mix(self) -> dict[str, tuple[int, int]]:
        """Greedy decisions per action: (live, proposed)."""
        live, proposed = self.transitions.sum(axis=1), self.transitions.sum(axis=0)
        return {a: (int(live[i]), int(proposed[i])) for i, a in enumerate(self.actions)}

    def as_dict(self) -> dict[str, Any]:
        """The numbers as plain JSON types (``simulation.json``)."""
        nonzero = [
            {"from": self.actions[i], "to": self.actions[j], "count": int(self.transitions[i, j])}
            for i, j in zip(*np.nonzero(self.transitions), strict=True)
        ]
        return {
            "source": self.source,
            "decisions": self.n,
            "changed": self.changed,
            "changed_share": self.changed / self.n if self.n else 0.0,
            "live_ruleset": self.live_version,
            "proposed_ruleset": self.proposed_version,
            "actions": list(self.actions),
            "transition_matrix": self.transitions.astype(int).tolist(),
            "transitions": nonzero,
            "mix": {a: {"live": lv, "proposed": pv} for a, (lv, pv) in self.mix().items()},
            "rules": [
                {**r.__dict__, "live_rate": r.live_hits / self.n, "proposed_rate": r.proposed_hits / self.n}
                for r in self.rules
            ],
            "value": {
                "basis": self.basis,
                "currency": self.currency,
                "per": "decision",
                "change": {k: _finite(e.as_dict()) for k, e in self.change.items()},
                "live": {k: _finite(e.as_dict()) for k, e in self.live_value.items()},
                "proposed": {k: _finite(e.as_dict()) for k, e in self.proposed_value.items()},
            },
            "replay_agreement": self.replay_agreement,
            "skipped": dict(self.skipped),
            "notes": list(self.notes),
        }


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def reads_request_time(policy: DecisionPolicy) -> bool:
    """True when some rule reads ``request.now`` itself (then rows cannot share an hour's request time)."""
    return any("request" in r.refs.dynamic or "now" in r.refs.fields["request"] for r in policy.engine.rules)


def _groups(
    policy: DecisionPolicy, rows: Sequence[LoggedDecision], exact_time: bool
) -> dict[tuple[Any, ...], list[int]]:
    out: dict[tuple[Any, ...], list[int]] = {}
    for i, row in enumerate(rows):
        now = int(row.now) if exact_time else int(row.now) - int(row.now) % 3600
        cands = policy.candidates(row.channel, row.candidates)
        context = json.dumps(dict(row.context), sort_keys=True) if row.context else ""
        out.setdefault((row.channel, cands, now, context, float(row.margin)), []).append(i)
    return out


def replay(policy: DecisionPolicy, rows: Sequence[LoggedDecision], exact_time: bool | None = None) -> Replay:
    """Greedy decisions and rule hits of ``policy`` on ``rows`` (scores, features and history as logged)."""
    exact = reads_request_time(policy) if exact_time is None else exact_time
    catalog = policy.catalog
    greedy = np.zeros(len(rows), dtype=np.int64)
    hits: dict[str, np.ndarray] = {}
    for (channel, cands, now, context, margin), idx in _groups(policy, rows, exact).items():
        group = [rows[i] for i in idx]
        p, rev = np.empty((len(group), len(cands))), np.empty((len(group), len(cands)))
        for k, row in enumerate(group):
            order = [row.candidates.index(a) for a in cands]
            p[k], rev[k] = np.asarray(row.p_convert, float)[order], np.asarray(row.expected_revenue, float)[order]
        names = sorted({name for row in group for name in row.features})
        columns = {name: np.array([row.features.get(name) for row in group], dtype=object) for name in names}
        histories = [policy.empty_history if row.history is None else row.history for row in group]
        batch = decide_batch(
            policy,
            [row.customer_id for row in group],
            columns,
            p,
            rev,
            channel=channel,
            now=now,
            candidates=cands,
            context=json.loads(context) if context else None,
            histories=histories,
            margin=margin,
        )
        greedy[idx] = [catalog.index[cands[g]] for g in batch.served.greedy.tolist()]
        r = batch.rules
        for rule_index in np.unique(r.pair_rule).tolist():
            fired = r.fired[:, r.pair_rule == rule_index].any(axis=1)
            rule_id = r.rules[rule_index].id
            hits.setdefault(rule_id, np.zeros(len(rows), dtype=bool))[idx] |= fired
    return Replay(greedy, hits)


def _modes(policy: DecisionPolicy) -> dict[str, str]:
    modes: dict[str, str] = {r.id: r.mode for r in policy.ruleset.rules}
    modes.update({r.id: r.mode for r in policy.engine.rules if r.id not in modes})  # catalog eligibility
    return modes


def _rule_rates(live: DecisionPolicy, proposed: DecisionPolicy, a: Replay, b: Replay) -> tuple[RuleRate, ...]:
    live_modes, proposed_modes = _modes(live), _modes(proposed)
    ids = list(dict.fromkeys([*live_modes, *proposed_modes]))
    return tuple(
        RuleRate(
            rule_id,
            live_modes.get(rule_id, "absent"),
            proposed_modes.get(rule_id, "absent"),
            int(a.hits[rule_id].sum()) if rule_id in a.hits else 0,
            int(b.hits[rule_id].sum()) if rule_id in b.hits else 0,
        )
        for rule_id in ids
    )


def _q_matrix(policy: DecisionPolicy, rows: Sequence[LoggedDecision]) -> np.ndarray:
    """Model value of every candidate per row, catalog columns: expected revenue minus cost (0 elsewhere,
    never chosen). The same units as the logged reward, so it can serve as DR's outcome model."""
    catalog = policy.catalog
    q = np.zeros((len(rows), len(catalog.ids)))
    for i, row in enumerate(rows):
        cols = [catalog.index[a] for a in row.candidates]
        cost = catalog.costs[cols] if row.costs is None else np.asarray(row.costs, float)
        q[i, cols] = np.asarray(row.expected_revenue, float) - cost
    return q


def _validate(policy: DecisionPolicy, rows: Sequence[LoggedDecision]) -> None:
    if not rows:
        raise DataError("no decisions to simulate")
    catalog = policy.catalog
    for row in rows:
        name = row.decision_id or row.customer_id
        unknown = [a for a in row.candidates if a not in catalog.by_id]
        if unknown:
            raise DataError(f"decision {name}: unknown action(s) {unknown}")
        if catalog.control not in row.candidates:
            raise DataError(f"decision {name}: the control {catalog.control} is not scored")
        k = len(row.candidates)
        if np.shape(row.p_convert) != (k,) or np.shape(row.expected_revenue) != (k,):
            raise DataError(f"decision {name}: one score per candidate needed")
        if row.action is not None and row.action not in row.candidates:
            raise DataError(f"decision {name}: served action {row.action} is not a candidate")


def simulate(
    live: DecisionPolicy,
    proposed: DecisionPolicy,
    rows: Sequence[LoggedDecision],
    *,
    source: str = "log",
    level: float = 0.95,
    bootstrap: int = 1000,
    seed: int = 0,
    skipped: Mapping[str, int] | None = None,
    notes: Sequence[str] = (),
) -> SimulationReport:
    """Replay ``rows`` under both policies and compare. Off-policy value estimates need every row's served
    action, logged probability and reward; otherwise the value change is model-based (see
    :func:`nextbest.core.simulation_value.value_change`)."""
    if live.catalog.content_hash != proposed.catalog.content_hash:
        raise ConfigError("live and proposed policies must use the same catalog (simulate one change at a time)")
    _validate(live, rows)
    a, b = replay(live, rows), replay(proposed, rows)
    n_actions = len(live.catalog.ids)
    transitions = np.zeros((n_actions, n_actions), dtype=np.int64)
    np.add.at(transitions, (a.greedy, b.greedy), 1)
    logged = [row.greedy_action for row in rows]
    agreement = None
    if all(g is not None for g in logged):
        names = np.array(live.catalog.ids, dtype=object)[a.greedy]
        agreement = float(np.mean(names == np.array(logged, dtype=object)))
    q = _q_matrix(live, rows)
    basis, change, live_value, proposed_value = value_change(
        rows, live.catalog.index, a.greedy, b.greedy, q, level=level, bootstrap=bootstrap, seed=seed
    )
    return SimulationReport(
        source=source,
        n=len(rows),
        actions=live.catalog.ids,
        live_version=live.ruleset.version,
        proposed_version=proposed.ruleset.version,
        transitions=transitions,
        rules=_rule_rates(live, proposed, a, b),
        basis=basis,
        change=change,
        live_value=live_value,
        proposed_value=proposed_value,
        replay_agreement=agreement,
        skipped=dict(skipped or {}),
        notes=tuple(notes),
        currency=live.catalog.currency,
    )
