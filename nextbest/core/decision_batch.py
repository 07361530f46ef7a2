"""Batch decisioning for outbound campaigns: the same policy as :meth:`DecisionPolicy.decide`, vectorised.

Features arrive inline as columns (``nextbest decide-batch --data``), one shared request (channel, time)
applies to every row, and model scores come as (n, K) arrays in :meth:`DecisionPolicy.candidates` order.
Row ``i`` of the result equals the single decision for that customer (``BatchDecisions.decision(i)``). A row
given a :class:`~nextbest.core.degradation.Degradation` (an unknown customer, stale features) is served the
catalog's control action with its reason, exactly as :meth:`DecisionPolicy.fallback` serves one decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nextbest.core.arbitration import ScoreBreakdown, choose, score_breakdown
from nextbest.core.decision import Decision, DecisionPolicy, DecisionRequest
from nextbest.core.degradation import Degradation
from nextbest.core.exploration import Served, ServedBatch, control_group_mask, serve_batch
from nextbest.core.rules.batch import BatchRuleEvaluation, evaluate_batch
from nextbest.core.rules.values import RequestInfo
from nextbest.errors import DataError


@dataclass(frozen=True)
class BatchDecisions:
    policy: DecisionPolicy
    channel: str
    now: int
    candidates: tuple[str, ...]
    customer_ids: Sequence[str | int]
    decision_ids: Sequence[str]
    scores: ScoreBreakdown
    eligible: np.ndarray  # (n, K)
    served: ServedBatch
    rules: BatchRuleEvaluation
    degradations: tuple[Degradation | None, ...] = ()  # per row when any row is degraded, else empty

    def __len__(self) -> int:
        return len(self.decision_ids)

    @property
    def actions(self) -> np.ndarray:
        names: np.ndarray = np.array(self.candidates, dtype=object)[self.served.index]
        return names

    def decision(self, i: int) -> Decision:
        """Row ``i`` as a full :class:`Decision`."""
        s = self.served
        served = Served(
            int(s.index[i]), int(s.greedy[i]), float(s.probability[i]), bool(s.explored[i]), bool(s.control[i])
        )
        request = DecisionRequest(self.customer_ids[i], self.channel, self.now, self.decision_ids[i])
        degraded = self.degradations[i] if self.degradations else None
        if degraded is not None:
            rules = self.rules.row(i) if degraded.with_rules else None
            return self.policy.fallback(request, degraded.reason, rules)
        return self.policy.assemble(
            request, self.candidates, self.scores, i, self.eligible[i], self.rules.row(i), served
        )

    def columns(self, explain: bool = True, scores: bool = False) -> dict[str, Any]:
        """One row per customer, ready for a parquet file; ``explain`` adds the suppressions as text
        (``action:rule,rule;...``), ``scores`` every candidate's expected incremental net value
        (``net_value__<action>``, NaN where a rule suppressed it) for analysis. A degraded row has no scores
        (NaN), ``degraded`` true and its ``reason``."""
        rows = np.arange(len(self))
        idx = self.served.index
        degraded = np.array([d is not None for d in self.degradations], dtype=bool) if self.degradations else None
        out: dict[str, Any] = {
            "customer_id": list(self.customer_ids),
            "decision_id": list(self.decision_ids),
            "action": self.actions,
            "probability": self.served.probability,
            "greedy_action": np.array(self.candidates, dtype=object)[self.served.greedy],
            "explored": self.served.explored,
            "control": self.served.control,
            "propensity": self.scores.propensity[rows, idx],
            "uplift": self.scores.uplift[rows, idx],
            "net_value": self.scores.net_value[rows, idx],
            "average_effect": np.zeros(len(self), dtype=bool)
            if self.scores.average_effect is None
            else self.scores.average_effect[rows, idx],
            "ruleset_version": [self.policy.ruleset.version] * len(self),
            "degraded": np.zeros(len(self), dtype=bool) if degraded is None else degraded,
            "reason": [None if d is None else d.reason for d in self.degradations] or [None] * len(self),
        }
        if explain:
            out["suppressed"] = self._explanations()
        if scores:
            net = np.where(self.eligible, self.scores.net_value, np.nan)
            for k, action in enumerate(self.candidates):
                out[f"net_value__{action}"] = net[:, k]
        if degraded is not None and degraded.any():
            for name in ("propensity", "uplift", "net_value", *(f"net_value__{a}" for a in self.candidates)):
                if name in out:
                    out[name] = np.where(degraded, np.nan, out[name])
            out["average_effect"] = out["average_effect"] & ~degraded
            if explain:  # a fallback explains suppressions only when the customer's features were known
                blank = [d is not None and not d.with_rules for d in self.degradations]
                out["suppressed"] = ["" if b else text for b, text in zip(blank, out["suppressed"], strict=True)]
        return out

    def _explanations(self) -> list[str]:
        """Rows share few distinct patterns of hits (consent and ticket combinations), so the text is built
        once per distinct pattern and mapped back to the rows."""
        r = self.rules
        enforce_suppress = np.array([r.rules[i].mode == "enforce" and r.rules[i].suppress for i in r.pair_rule], bool)
        hits = r.fired & enforce_suppress[None, :] if len(enforce_suppress) else r.fired
        out = np.full(len(self), "", dtype=object)
        rows = np.flatnonzero(hits.any(axis=1))
        if rows.size:
            packed = np.ascontiguousarray(np.packbits(hits[rows], axis=1))
            keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
            _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
            texts = np.array([self._explain(hits[rows[j]]) for j in first], dtype=object)
            out[rows] = texts[inverse.ravel()]
        return list(out)

    def _explain(self, row_hits: np.ndarray) -> str:
        r = self.rules
        per_action: dict[str, list[str]] = {}
        for p in np.flatnonzero(row_hits):
            action = self.candidates[int(r.pair_candidate[p])]
            per_action.setdefault(action, []).append(r.rules[int(r.pair_rule[p])].id)
        return ";".join(f"{a}:{','.join(ids)}" for a, ids in per_action.items())


def decide_batch(
    policy: DecisionPolicy,
    customer_ids: Sequence[str | int] | np.ndarray,
    features: Mapping[str, Any],
    p_convert: np.ndarray,
    expected_revenue: np.ndarray,
    *,
    channel: str,
    now: int,
    decision_ids: Sequence[str] | None = None,
    candidates: tuple[str, ...] | None = None,
    context: Mapping[str, str | int | float | bool] | None = None,
    histories: Sequence[Mapping[str, Any]] | None = None,
    margin: float = 0.0,
    scale: float | None = None,
    degradations: Sequence[Degradation | None] | None = None,
    average_effect: np.ndarray | None = None,
) -> BatchDecisions:
    """Decide for n customers (``margin`` and ``scale`` as in :meth:`DecisionPolicy.decide`). ``features`` maps
    feature name -> n values (None/NaN missing); ``degradations`` (one per customer, None where the model
    decides) serve the control action to the rows that have one; ``histories``
    (one map per customer) defaults to "never contacted"; ``decision_ids`` default to ``batch-<now>:<id>``,
    which keeps a re-run of the same batch identical (exploration draws come from the decision id);
    ``average_effect``: the (n, K) mask of scores that are an action's average effect (``PolicyModel.score``)."""
    cands = policy.candidates(channel, candidates)
    ids = list(customer_ids.tolist() if isinstance(customer_ids, np.ndarray) else customer_ids)
    n, k = len(ids), len(cands)
    p = np.asarray(p_convert, dtype=np.float64)
    rev = np.asarray(expected_revenue, dtype=np.float64)
    if p.shape != (n, k) or rev.shape != (n, k):
        raise DataError(f"scores must be ({n}, {k}) in candidate order; got {p.shape} and {rev.shape}")
    if not (np.isfinite(p).all() and np.isfinite(rev).all()):
        raise DataError("scores contain non-finite values")
    if average_effect is not None and np.shape(average_effect) != (n, k):
        raise DataError(f"average_effect must be ({n}, {k}) in candidate order; got {np.shape(average_effect)}")
    if histories is not None and len(histories) != n:
        raise DataError(f"histories must have one map per customer ({n}); got {len(histories)}")
    if degradations is not None and len(degradations) != n:
        raise DataError(f"degradations must have one entry per customer ({n}); got {len(degradations)}")
    dids = [f"batch-{int(now)}:{c}" for c in ids] if decision_ids is None else list(decision_ids)
    if len(dids) != n:
        raise DataError(f"decision_ids must have one id per customer ({n}); got {len(dids)}")
    info = RequestInfo(channel, int(now), dict(context or {}))
    rules = evaluate_batch(policy.engine, cands, features, info, histories, n)
    levers = policy.levers(cands)[None, :] * rules.lever
    scores = score_breakdown(policy.catalog, cands, p, rev, levers, average_effect=average_effect)
    eligible = ~rules.suppressed
    eligible[:, scores.control_index] = True
    greedy = choose(scores.net_value, eligible, scores.control_index, margin)
    ex = policy.exploration
    control = control_group_mask(ids, ex.control_share, ex.control_salt)
    served = serve_batch(
        greedy,
        eligible,
        ex.rate,
        dids,
        salt=ex.explore_salt,
        control=control,
        control_index=scores.control_index,
        weights=None if ex.rate <= 0 else ex.weights(scores.net_value, eligible, scale),
    )
    fallbacks = tuple(degradations) if degradations is not None and any(d is not None for d in degradations) else ()
    if fallbacks:  # the control action with probability 1, as DecisionPolicy.fallback serves one decision
        mask = np.array([d is not None for d in fallbacks], dtype=bool)
        c = scores.control_index
        served = ServedBatch(
            np.where(mask, c, served.index),
            np.where(mask, c, served.greedy),
            np.where(mask, 1.0, served.probability),
            np.where(mask, False, served.explored),
            np.where(mask, False, served.control),
        )
    return BatchDecisions(policy, channel, int(now), cands, ids, dids, scores, eligible, served, rules, fallbacks)
