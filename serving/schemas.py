"""The HTTP contract: request and response models of the decision service.

These models are the published OpenAPI document, so they change only compatibly (new optional fields). Values
that depend on live configuration (channels, action ids) are validated by the runtime against the current
catalog, which can be hot-reloaded, with errors naming the field.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from nextbest.core.events import MAX_AMOUNT
from nextbest.core.ids import CustomerId
from nextbest.core.wire import JsonFloat, JsonTime

MAX_ID = 128
MAX_CONTEXT_TEXT = 1024
#: Identifiers and context strings: no control characters (a NUL byte cannot be stored by PostgreSQL, a newline
#: breaks log lines and CSV exports).
_NO_CONTROLS = r"^[^\x00-\x1f\x7f]*$"
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=_NO_CONTROLS)]
ContextKey = Annotated[str, Field(min_length=1, max_length=64, pattern=_NO_CONTROLS)]
MAX_CONTEXT_NUMBER = 1e15
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _context_value(value: Any) -> str | int | float | bool:
    """A context value: a string without control characters (at most MAX_CONTEXT_TEXT characters), a boolean,
    or a finite number within +-MAX_CONTEXT_NUMBER. One message per problem, not one per type tried."""
    if type(value) is bool:
        return value
    if type(value) is str:
        if len(value) > MAX_CONTEXT_TEXT:
            raise PydanticCustomError("context_text", f"strings are at most {MAX_CONTEXT_TEXT} characters")
        if _CONTROLS.search(value):
            raise PydanticCustomError("context_text", "strings must not contain control characters")
        return value
    if type(value) is int or type(value) is float:
        if not math.isfinite(value) or abs(value) > MAX_CONTEXT_NUMBER:
            raise PydanticCustomError("context_number", "numbers must be finite, within +-1e15")
        return value
    raise PydanticCustomError("context_value", "must be a string, a number or a boolean")


ContextValue = Annotated[
    str | int | float | bool,
    PlainValidator(_context_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_CONTEXT_TEXT, "pattern": _NO_CONTROLS},
                {"type": "number", "minimum": -MAX_CONTEXT_NUMBER, "maximum": MAX_CONTEXT_NUMBER},
                {"type": "boolean"},
            ]
        }
    ),
]


def _every_key(schema: dict[str, Any]) -> None:
    """Context keys as JSON Schema states them for every key: pydantic publishes the key pattern as
    ``patternProperties``, which leaves a key outside the pattern unconstrained (and its value too)."""
    (values,) = schema.pop("patternProperties").values()
    schema["additionalProperties"] = values
    schema["propertyNames"]["pattern"] = _NO_CONTROLS


class _Strict(BaseModel):
    # No NaN or infinity anywhere in the contract (JSON's `NaN`/`Infinity` literals, or 1e999): 422, field named.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DecideRequest(_Strict):
    customer_id: CustomerId
    channel: str = Field(
        min_length=1, max_length=32, description="Channel of the interaction (a catalog channel) or `any`."
    )
    context: dict[ContextKey, ContextValue] = Field(
        default_factory=dict,
        max_length=50,
        description="Request context visible to rules as `request.context` (never used for thresholds).",
        json_schema_extra=_every_key,
    )
    candidates: list[Identifier] | None = Field(
        None,
        max_length=100,
        description="Restrict the decision to these action ids (the control is always in); duplicates count once.",
    )
    request_id: Identifier | None = Field(
        None,
        description="Idempotency key: the same id with the same request returns the same decision; with a "
        "different request (customer, channel, context or candidates) it is a 409.",
    )

    @field_validator("candidates")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(value))


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
    average_effect: bool = Field(
        False,
        description="True when the model scored this action by its average effect, not this customer's own: the "
        "log it learned from rarely tried the action (or the control) for customers like this one, and its "
        "learners disagreed on whether the action helps them.",
    )


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
    logged: bool = Field(
        True,
        description="False when the decision could be neither logged nor spooled (a full disk): the control "
        "action is served (degraded), since a contact that is not recorded would escape caps and attribution.",
    )


class DecideBatchResponse(_Strict):
    decisions: list[DecisionResponse]


class FeedbackRequest(_Strict):
    decision_id: Identifier
    type: Literal["impression", "click", "conversion", "dismissed"]
    revenue: JsonFloat | None = Field(None, ge=0, le=MAX_AMOUNT, description="Order revenue, for conversions.")
    customer_id: CustomerId | None = Field(None, description="Checked against the decision's customer when given.")
    timestamp: JsonTime | None = Field(
        None, description="When it happened (defaults to now); at most the service's clock skew in the future."
    )
    feedback_id: Identifier | None = Field(None, description="Idempotency key.")


class FeedbackResponse(_Strict):
    decision_id: str
    feedback_id: str
    recorded: bool = Field(description="False when this feedback_id was already recorded (or it is queued).")
    queued: bool = Field(
        False,
        description="The decision log is unreachable (or its decision is still queued): the feedback is spooled "
        "and recorded when the log is back; its decision and customer are checked then.",
    )


class FeedbackBatchRequest(_Strict):
    items: list[FeedbackRequest] = Field(min_length=1, max_length=10_000)


class FeedbackResult(_Strict):
    decision_id: str
    feedback_id: str | None
    recorded: bool
    queued: bool = Field(False, description="Spooled while the decision log is unreachable (see FeedbackResponse).")
    error: str | None = Field(None, description="Why this item was not recorded (e.g. an unknown decision).")


class FeedbackBatchResponse(_Strict):
    results: list[FeedbackResult]


class EventResponse(_Strict):
    customer_id: str = Field(description="The event's customer, in the canonical (string) form.")
    type: Literal["ticket_opened", "ticket_closed", "cart_abandoned", "order_placed", "consent_changed"]
    view: Literal["service_tickets", "cart", "consents"] = Field(description="The feature view it updates.")
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
