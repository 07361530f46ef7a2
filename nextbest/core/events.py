"""Real-time customer events and how each one changes the state of its feature view.

Events are validated at the boundary (HTTP, CLI). :func:`next_state` is pure: given the view's current row
and an event it returns the new row, or ``None`` when the event is older than the stored state (a late
event never overwrites a newer one) or changes nothing. Writing the row is the adapter's job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from nextbest.core.ids import CustomerId
from nextbest.core.wire import JsonBool, JsonFloat, JsonInt, JsonTime

Row = dict[str, Any]


MAX_AMOUNT = 1e9  # any amount of money: order values, cart values, feedback revenue


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    customer_id: CustomerId  # canonical string; integers accepted (42 and "42" are one customer)
    timestamp: JsonTime = Field(
        description="When the event happened (UTC if no offset is given); at most the service's clock skew "
        "(`serving.max_clock_skew_s`, 300 s by default) in the future."
    )
    event_id: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def ts(self) -> int:
        return int(self.timestamp.timestamp())


class TicketOpened(_Event):
    type: Literal["ticket_opened"]
    ticket_id: JsonInt = Field(gt=0)
    severity: JsonInt = Field(ge=1, le=3)


class TicketClosed(_Event):
    type: Literal["ticket_closed"]
    ticket_id: JsonInt = Field(gt=0)


class CartAbandoned(_Event):
    type: Literal["cart_abandoned"]
    cart_value: JsonFloat = Field(ge=0, le=MAX_AMOUNT)


class OrderPlaced(_Event):
    type: Literal["order_placed"]
    amount: JsonFloat = Field(ge=0, le=MAX_AMOUNT)


class ConsentChanged(_Event):
    type: Literal["consent_changed"]
    channel: Literal["email", "sms", "push"]
    opt_in: JsonBool


CustomerEvent = Annotated[
    TicketOpened | TicketClosed | CartAbandoned | OrderPlaced | ConsentChanged,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[CustomerEvent] = TypeAdapter(CustomerEvent)
EVENT_TYPES = ("ticket_opened", "ticket_closed", "cart_abandoned", "order_placed", "consent_changed")

# Which feature view each event type updates.
EVENT_VIEW: dict[str, str] = {
    "ticket_opened": "service_tickets",
    "ticket_closed": "service_tickets",
    "cart_abandoned": "cart",
    "order_placed": "cart",
    "consent_changed": "consents",
}

EMPTY_STATE: dict[str, Row] = {
    "service_tickets": {
        "open_tickets": 0,
        "max_open_severity": 0,
        "last_ticket_opened_ts": None,
        "open_ticket_ids": "",
    },
    "cart": {"cart_open": 0, "last_cart_abandoned_ts": None, "last_cart_value": None},
    "consents": {"email_opt_in": 0, "sms_opt_in": 0, "push_opt_in": 0},
}


def future_time_error(timestamp: datetime, now: float, max_skew_s: float) -> str | None:
    """Why ``timestamp`` cannot be accepted at ``now`` (Unix seconds), or None. A time further in the future than
    the allowed clock skew is refused: stored, it would win over every real event until that date (an opt-in
    dated 2200 would outlive the customer's opt-out a minute later)."""
    aware = timestamp.replace(tzinfo=UTC) if timestamp.tzinfo is None else timestamp
    ahead = aware.timestamp() - now
    if ahead <= max_skew_s:
        return None
    return f"{aware.isoformat()} is {ahead:,.0f} s in the future; at most {max_skew_s:g} s of clock skew is allowed"


def parse_event(payload: Any) -> CustomerEvent:
    """Validate a JSON-like payload; raises pydantic ``ValidationError`` naming the bad field."""
    return EVENT_ADAPTER.validate_python(payload)


def _tickets(ids: str) -> dict[int, int]:
    pairs = (item.split(":") for item in ids.split(";") if item)
    return {int(t): int(s) for t, s in pairs}


def _ticket_row(current: Row, tickets: dict[int, int], opened_ts: int | None) -> Row:
    return {
        "open_tickets": len(tickets),
        "max_open_severity": max(tickets.values(), default=0),
        "last_ticket_opened_ts": opened_ts if opened_ts is not None else current.get("last_ticket_opened_ts"),
        "open_ticket_ids": ";".join(f"{t}:{s}" for t, s in sorted(tickets.items())),
    }


def next_state(current: Row | None, current_ts: int | None, event: CustomerEvent) -> Row | None:
    """The view row after ``event``; ``None`` when the event is older than the stored state or is a no-op."""
    if current_ts is not None and event.ts < current_ts:
        return None
    view = EVENT_VIEW[event.type]
    state = {**EMPTY_STATE[view], **{k: v for k, v in (current or {}).items() if k in EMPTY_STATE[view]}}
    if isinstance(event, TicketOpened | TicketClosed):
        tickets = _tickets(state["open_ticket_ids"] or "")
        if isinstance(event, TicketOpened):
            if tickets.get(event.ticket_id) == event.severity:
                return None
            tickets[event.ticket_id] = event.severity
            return _ticket_row(state, tickets, event.ts)
        if event.ticket_id not in tickets:
            return None
        del tickets[event.ticket_id]
        return _ticket_row(state, tickets, None)
    if isinstance(event, CartAbandoned):
        return {"cart_open": 1, "last_cart_abandoned_ts": event.ts, "last_cart_value": event.cart_value}
    if isinstance(event, OrderPlaced):
        return None if not state["cart_open"] else {**state, "cart_open": 0}
    return {**state, f"{event.channel}_opt_in": int(event.opt_in)}
