"""A decision as it was served: the core's :class:`~nextbest.core.decision.Decision` plus its context (the
request it answered, the model and feature service behind it, when, and where the action is delivered). One
typed value from which both the HTTP response body and the decision-log record are rendered
(``serving/decision_output.py``), so neither is copied out of the other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nextbest.core.catalog import ActionCatalog
from nextbest.core.decision import Decision


@dataclass(frozen=True)
class ServedDecision:
    decision: Decision
    customer_id: str  # as the request gave it (canonical form)
    channel: str  # the channel the request asked for
    request_id: str | None
    model_version: str | None  # the version that scored it (None for a degraded decision without a model)
    feature_service: str
    decided_at: float  # Unix seconds
    action_channel: str | None  # the channel the action is delivered on; None = not a contact
    context: Mapping[str, Any] = field(default_factory=dict)  # the request's context, as rules saw it
    request_hash: str | None = None  # of the request a request_id came with (replays answer the same request only)

    @classmethod
    def of(
        cls,
        decision: Decision,
        catalog: ActionCatalog,
        *,
        customer_id: str,
        channel: str,
        request_id: str | None,
        model_version: str | None,
        feature_service: str,
        decided_at: float,
        context: Mapping[str, Any] | None = None,
        request_hash: str | None = None,
    ) -> ServedDecision:
        return cls(
            decision,
            customer_id,
            channel,
            request_id,
            model_version,
            feature_service,
            decided_at,
            catalog.delivery_channel(channel, decision.action),
            dict(context or {}),
            request_hash,
        )
