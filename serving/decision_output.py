"""What a decision becomes: the HTTP response body and the decision-log record.

The body is built here as JSON values in the field order of :class:`DecisionResponse`, not by validating that
model: the values come from the decision core, not from a caller, and validating 20 candidates, their
suppressions and shadow hits cost more than the rest of the response (tests hold every kind of body equal to
its validated, dumped model). The candidate, suppression and shadow lists are built once and shared by the
response and the record (the log stores them in its ``scores`` and ``rule_hits`` columns and restores them
into the response).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from nextbest.core.catalog import ActionCatalog
from nextbest.core.decision import Decision
from nextbest.core.rule_values import RuleHit
from nextbest.serving.decision_log import DecisionRecord
from nextbest.serving.schemas import DecideRequest, DecisionResponse

_CANDIDATE_KEYS = ("action", "rank", "eligible", "propensity", "uplift", "value", "cost", "lever", "net_value")


def respond(
    req: DecideRequest, d: Decision, model_version: str | None, feature_service: str, now: float
) -> dict[str, Any]:
    """The response body of ``d`` (JSON values: what ``DecisionResponse(...).model_dump(mode="json")`` gives).
    ``model_version``: the version that scored the decision (None when a degraded decision had no model);
    ``now``: when it was decided (Unix seconds)."""
    keys = _CANDIDATE_KEYS
    return {
        "decision_id": d.decision_id,
        "request_id": req.request_id,
        "customer_id": req.customer_id,
        "channel": req.channel,
        "action": d.action,
        "probability": float(d.probability),
        "greedy_action": d.greedy_action,
        "explored": bool(d.explored),
        "control": bool(d.control),
        "degraded": bool(d.degraded),
        "reason": d.reason,
        "candidates": [dict(zip(keys, c, strict=True)) for c in d.candidates],
        "suppressed": [
            {"action": s.action, "rule_ids": list(s.rule_ids), "messages": list(s.messages)} for s in d.suppressed
        ],
        "shadow": [_hit(h) for h in d.shadow],
        "model_version": model_version,
        "ruleset_version": d.ruleset_version,
        "catalog_version": d.catalog_version,
        "feature_service": feature_service,
        "decided_at": iso_utc(now),
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


def record(
    req: DecideRequest,
    d: Decision,
    catalog: ActionCatalog,
    features: dict[str, Any],
    body: dict[str, Any],
    now: float,
) -> DecisionRecord:
    """The decision-log record of ``d``, with ``body`` (from :func:`respond`) as its response."""
    return DecisionRecord(
        decision_id=d.decision_id,
        request_id=req.request_id,
        customer_id=req.customer_id,
        created_at=now,
        channel=req.channel,
        action=d.action,
        action_channel=catalog.delivery_channel(req.channel, d.action),
        probability=d.probability,
        explored=d.explored,
        control=d.control,
        degraded=d.degraded,
        reason=d.reason,
        model_version=body["model_version"],
        ruleset_version=d.ruleset_version,
        catalog_version=d.catalog_version,
        feature_service=body["feature_service"],
        features=features,
        scores=body["candidates"],
        rule_hits=[*body["shadow"], *({"suppressed": s} for s in body["suppressed"])],
        response=body,
        context=dict(req.context),
        request_hash=None if req.request_id is None else request_hash(req),
    )


def _hit(hit: RuleHit) -> dict[str, Any]:
    return {
        "rule_id": hit.rule_id,
        "action": hit.action_id,
        "effect": str(hit.effect),
        "message": hit.message,
        "mode": str(hit.mode),
        "error": hit.error,
    }
