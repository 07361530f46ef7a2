"""The HTTP contract: request and response models of the decision service.

These models are the published OpenAPI document, so they change only compatibly (new optional fields). Values
that depend on live configuration (channels, action ids) are validated by the runtime against the current
catalog, which can be hot-reloaded, with errors naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nextbest.core.ids import CustomerId

ContextValue = str | int | float | bool
MAX_ID = 128


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecideRequest(_Strict):
    customer_id: CustomerId
    channel: str = Field(
        min_length=1, max_length=32, description="Channel of the interaction (a catalog channel) or `any`."
    )
    context: dict[str, ContextValue] = Field(
        default_factory=dict,
        max_length=50,
        description="Request context visible to rules as `request.context` (never used for thresholds).",
    )
    candidates: list[str] | None = Field(
        None, max_length=100, description="Restrict the decision to these action ids (the control is always in)."
    )
    request_id: str | None = Field(
        None, min_length=1, max_length=MAX_ID, description="Idempotency key: the same id returns the same decision."
    )


class DecideBatchRequest(_Strict):
    requests: list[DecideRequest] = Field(min_length=1, description="Decisions to make (see the service limits).")


class CandidateOut(_Strict):
    action: str
    rank: int
    eligible: bool
    propensity: float = Field(description="P(convert | customer, action).")
    uplift: float = Field(description="Propensity minus the propensity of doing nothing.")
    value: float = Field(description="Expected order value if the customer converts under this action.")
    cost: float = Field(description="Fixed cost of the action.")
    lever: float = Field(description="Business lever (catalog lever x rule levers).")
    net_value: float = Field(description="((expected revenue - expected revenue of doing nothing) - cost) x lever.")


class SuppressionOut(_Strict):
    action: str
    rule_ids: list[str]
    messages: list[str]


class RuleHitOut(_Strict):
    rule_id: str
    action: str
    effect: str
    message: str
    mode: str
    error: str | None = None


class DecisionResponse(_Strict):
    decision_id: str
    request_id: str | None
    customer_id: str = Field(description='The customer, in the canonical (string) form: 42 is answered as "42".')
    channel: str
    action: str = Field(description="The action to take (`no_action` means do nothing).")
    probability: float = Field(description="Probability the policy had of serving this action (for evaluation).")
    greedy_action: str = Field(description="What arbitration alone chose (differs when exploring or in control).")
    explored: bool
    control: bool = Field(description="The customer is in the global control group.")
    degraded: bool = Field(description="A safe fallback was served because features or models were unavailable.")
    reason: str | None = Field(None, description="Why the decision is degraded.")
    candidates: list[CandidateOut]
    suppressed: list[SuppressionOut]
    shadow: list[RuleHitOut] = Field(description="Shadow-mode rule hits: reported, not applied.")
    model_version: str | None
    ruleset_version: str
    catalog_version: str
    feature_service: str
    decided_at: datetime
    replayed: bool = Field(False, description="True when an earlier decision with this request_id was returned.")


class DecideBatchResponse(_Strict):
    decisions: list[DecisionResponse]


class FeedbackRequest(_Strict):
    decision_id: str = Field(min_length=1, max_length=MAX_ID)
    type: Literal["impression", "click", "conversion", "dismissed"]
    revenue: float | None = Field(None, ge=0, description="Order revenue, for conversions.")
    customer_id: CustomerId | None = Field(None, description="Checked against the decision's customer when given.")
    timestamp: datetime | None = Field(None, description="When it happened (defaults to now).")
    feedback_id: str | None = Field(None, min_length=1, max_length=MAX_ID, description="Idempotency key.")


class FeedbackResponse(_Strict):
    decision_id: str
    feedback_id: str
    recorded: bool = Field(description="False when this feedback_id was already recorded.")


class FeedbackBatchRequest(_Strict):
    items: list[FeedbackRequest] = Field(min_length=1, max_length=10_000)


class FeedbackResult(_Strict):
    decision_id: str
    feedback_id: str | None
    recorded: bool
    error: str | None = Field(None, description="Why this item was not recorded (e.g. an unknown decision).")


class FeedbackBatchResponse(_Strict):
    results: list[FeedbackResult]


class EventResponse(_Strict):
    customer_id: str = Field(description="The event's customer, in the canonical (string) form.")
    type: str
    view: str
    outcome: Literal["applied", "ignored_older", "unchanged", "queued"] = Field(
        description="`queued`: the online store is unreachable; the event is spooled and applied when it is back."
    )


class ErrorResponse(_Strict):
    error: str = Field(description="One line naming the field and the problem.")
    field: str | None = None
    detail: list[dict[str, Any]] = Field(default_factory=list)


class ReadinessResponse(_Strict):
    ready: bool
    degraded: list[str] = Field(description="What is not working; decisions fall back while it lasts.")
    model_version: str | None
    ruleset_version: str | None
    catalog_version: str | None
    feature_service: str
    details: dict[str, Any]
