"""What a decision becomes: the HTTP response and the decision-log record.

The candidate, suppression and shadow lists are built once, as JSON values, and shared by the response and the
record (the log stores them in its ``scores`` and ``rule_hits`` columns and restores them into the response).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from nextbest.core.catalog import ActionCatalog
from nextbest.core.decision import CandidateScore, Decision
from nextbest.serving.decision_log import DecisionRecord
from nextbest.serving.schemas import DecideRequest, DecisionResponse

_LISTS = {"candidates", "suppressed", "shadow"}


def respond(
    req: DecideRequest, d: Decision, model_version: str | None, feature_service: str
) -> tuple[DecisionResponse, dict[str, Any]]:
    """The response and its JSON form for the log. ``model_version``: the version that scored the decision
    (None when a degraded decision had no model)."""
    lists: dict[str, Any] = {
        "candidates": [_candidate(c) for c in d.candidates],
        "suppressed": [
            {"action": s.action, "rule_ids": list(s.rule_ids), "messages": list(s.messages)} for s in d.suppressed
        ],
        "shadow": [_hit(h) for h in d.shadow],
    }
    response = DecisionResponse(
        decision_id=d.decision_id,
        request_id=req.request_id,
        customer_id=req.customer_id,
        channel=req.channel,
        action=d.action,
        probability=d.probability,
        greedy_action=d.greedy_action,
        explored=d.explored,
        control=d.control,
        degraded=d.degraded,
        reason=d.reason,
        model_version=model_version,
        ruleset_version=d.ruleset_version,
        catalog_version=d.catalog_version,
        feature_service=feature_service,
        decided_at=datetime.fromtimestamp(time.time(), UTC),
        **lists,
    )
    return response, response.model_dump(mode="json", exclude=_LISTS) | lists


def record(
    req: DecideRequest,
    d: Decision,
    catalog: ActionCatalog,
    features: dict[str, Any],
    body: dict[str, Any],
    now: float,
) -> DecisionRecord:
    """The decision-log record of ``d``, with ``body`` (from :func:`respond`) as its response."""
    action = catalog.by_id.get(d.action)
    return DecisionRecord(
        decision_id=d.decision_id,
        request_id=req.request_id,
        customer_id=req.customer_id,
        created_at=now,
        channel=req.channel,
        action=d.action,
        action_channel=_delivery_channel(req.channel, action.channels if action else ()),
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
    )


def _delivery_channel(request_channel: str, action_channels: tuple[str, ...]) -> str | None:
    if not action_channels:
        return None
    return request_channel if request_channel in action_channels else action_channels[0]


def _candidate(c: CandidateScore) -> dict[str, Any]:
    return {
        "action": c.action, "rank": c.rank, "eligible": c.eligible, "propensity": c.propensity, "uplift": c.uplift,
        "value": c.value, "cost": c.cost, "lever": c.lever, "net_value": c.net_value,
    }  # fmt: skip


def _hit(hit: Any) -> dict[str, Any]:
    return {
        "rule_id": hit.rule_id,
        "action": hit.action_id if hasattr(hit, "action_id") else hit.action,
        "effect": str(hit.effect),
        "message": hit.message,
        "mode": str(hit.mode),
        "error": hit.error,
    }
