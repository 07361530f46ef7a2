"""What a served decision becomes: the HTTP response body and the decision-log record, both rendered from one
:class:`~nextbest.core.served.ServedDecision`.

The body is built here as JSON values in the field order of :class:`DecisionResponse`, not by validating that
model: the values come from the decision core, not from a caller, and validating 20 candidates, their
suppressions and shadow hits cost more than the rest of the response (tests hold every kind of body equal to
its validated, dumped model). The candidate, suppression and shadow lists are built once: the body shows them,
the record stores them in its ``scores`` and ``rule_hits`` columns and its ``response`` without them (the log
restores them when it reads the row back), so a decision's bytes are not stored twice.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from nextbest.core.decision import CandidateScore, Decision
from nextbest.core.rules.values import RuleHit
from nextbest.core.served import ServedDecision
from nextbest.io.decision_log import DecisionRecord
from nextbest.io.decision_log.sql import IN_COLUMNS
from nextbest.serving.schemas import DecideRequest, DecisionResponse

#: One candidate shape: the core's CandidateScore, rendered by field name (tests hold CandidateOut to it).
_CANDIDATE_KEYS = CandidateScore._fields
_LISTS = ("candidates", "suppressed", "shadow")  # the body's lists the record stores in columns of their own


def respond(served: ServedDecision) -> dict[str, Any]:
    """The response body (JSON values: what ``DecisionResponse(...).model_dump(mode="json")`` gives)."""
    return _body(served, *_lists(served.decision))


def render(served: ServedDecision, features: dict[str, Any]) -> tuple[dict[str, Any], DecisionRecord]:
    """The response body and the decision-log record (``features``: the values the decision used), from one
    set of candidate, suppression and shadow lists."""
    candidates, suppressed, shadow = _lists(served.decision)
    body = _body(served, candidates, suppressed, shadow)
    d = served.decision
    stored = {k: v for k, v in body.items() if k not in _LISTS}
    stored[IN_COLUMNS] = sorted(_LISTS)  # restored from scores and rule_hits when the row is read
    record = DecisionRecord(
        decision_id=d.decision_id,
        request_id=served.request_id,
        customer_id=served.customer_id,
        created_at=served.decided_at,
        channel=served.channel,
        action=d.action,
        action_channel=served.action_channel,
        probability=d.probability,
        explored=d.explored,
        control=d.control,
        degraded=d.degraded,
        reason=d.reason,
        model_version=served.model_version,
        ruleset_version=d.ruleset_version,
        catalog_version=d.catalog_version,
        feature_service=served.feature_service,
        features=features,
        scores=candidates,
        rule_hits=[*shadow, *({"suppressed": s} for s in suppressed)],
        response=stored,
        context=dict(served.context),
        request_hash=served.request_hash,
    )
    return body, record


def _lists(d: Decision) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    keys = _CANDIDATE_KEYS
    return (
        [dict(zip(keys, c, strict=True)) for c in d.candidates],
        [{"action": s.action, "rule_ids": list(s.rule_ids), "messages": list(s.messages)} for s in d.suppressed],
        [_hit(h) for h in d.shadow],
    )


def _body(
    served: ServedDecision,
    candidates: list[dict[str, Any]],
    suppressed: list[dict[str, Any]],
    shadow: list[dict[str, Any]],
) -> dict[str, Any]:
    d = served.decision
    return {
        "decision_id": d.decision_id,
        "request_id": served.request_id,
        "customer_id": served.customer_id,
        "channel": served.channel,
        "action": d.action,
        "probability": float(d.probability),
        "greedy_action": d.greedy_action,
        "explored": bool(d.explored),
        "control": bool(d.control),
        "degraded": bool(d.degraded),
        "reason": d.reason,
        "candidates": candidates,
        "suppressed": suppressed,
        "shadow": shadow,
        "model_version": served.model_version,
        "ruleset_version": d.ruleset_version,
        "catalog_version": d.catalog_version,
        "feature_service": served.feature_service,
        "decided_at": iso_utc(served.decided_at),
        "replayed": False,
        "logged": True,
    }


def encode(body: dict[str, Any] | list[Any]) -> bytes:
    """JSON bytes of a body from :func:`respond` (or a list/map of them), as the response models serialise."""
    return to_json(body, inf_nan_mode="null")


def validated(body: dict[str, Any]) -> DecisionResponse:
    """The response model of a body (for Python callers, and for stored bodies of any version)."""
    return DecisionResponse.model_validate(body)


def canonical(stored: dict[str, Any], **updates: Any) -> dict[str, Any]:
    """A stored body (any version, any key order: JSONB sorts keys) as the current contract's body."""
    body: dict[str, Any] = validated({**stored, **updates}).model_dump(mode="json")
    return body


def iso_utc(ts: float) -> str:
    """``ts`` as pydantic serialises an aware UTC datetime (``2026-12-01T04:11:54.123456Z``)."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def request_hash(req: DecideRequest) -> str:
    """A hash of what a request asks (customer, channel, context, candidates; not its request_id): a request_id
    replays its decision only for a request with the same hash. Context keys in any order hash alike."""
    asked = {
        "customer_id": req.customer_id,
        "channel": req.channel,
        "context": req.context,
        "candidates": req.candidates,
    }
    canonical_json = json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical_json.encode()).hexdigest()[:32]


def _hit(hit: RuleHit) -> dict[str, Any]:
    return {
        "rule_id": hit.rule_id,
        "action": hit.action_id,
        "effect": str(hit.effect),
        "message": hit.message,
        "mode": str(hit.mode),
        "error": hit.error,
    }
