from __future__ import annotations

import pytest
from pydantic import ValidationError

from nextbest.core.events import next_state, parse_event

T0 = "2026-11-01T10:00:00Z"


def event(**kw: object):  # type: ignore[no-untyped-def]
    return parse_event({"customer_id": 7, "timestamp": T0, **kw})


def test_ticket_open_and_close_track_open_tickets_and_severity() -> None:
    opened = event(type="ticket_opened", ticket_id=1, severity=3)
    state = next_state(None, None, opened)
    assert state == {
        "open_tickets": 1,
        "max_open_severity": 3,
        "last_ticket_opened_ts": opened.ts,
        "open_ticket_ids": "1:3",
    }
    second = event(type="ticket_opened", ticket_id=2, severity=1, timestamp="2026-11-01T11:00:00Z")
    state2 = next_state(state, opened.ts, second)
    assert state2 is not None and state2["open_tickets"] == 2 and state2["max_open_severity"] == 3
    closed = event(type="ticket_closed", ticket_id=1, timestamp="2026-11-01T12:00:00Z")
    state3 = next_state(state2, second.ts, closed)
    assert state3 is not None
    assert (state3["open_tickets"], state3["max_open_severity"], state3["open_ticket_ids"]) == (1, 1, "2:1")
    assert state3["last_ticket_opened_ts"] == second.ts


def test_older_event_never_overwrites_newer_state() -> None:
    newer = event(type="ticket_opened", ticket_id=1, severity=2, timestamp="2026-11-02T00:00:00Z")
    state = next_state(None, None, newer)
    late = event(type="ticket_closed", ticket_id=1, timestamp="2026-11-01T00:00:00Z")
    assert next_state(state, newer.ts, late) is None


def test_duplicate_and_unknown_events_are_no_ops() -> None:
    opened = event(type="ticket_opened", ticket_id=5, severity=2)
    state = next_state(None, None, opened)
    assert next_state(state, opened.ts, opened) is None  # replayed
    assert next_state(state, opened.ts, event(type="ticket_closed", ticket_id=99)) is None


def test_cart_and_order_and_consent() -> None:
    cart = next_state(None, None, event(type="cart_abandoned", cart_value=80.5))
    assert cart is not None and cart["cart_open"] == 1 and cart["last_cart_value"] == 80.5
    after_order = next_state(cart, 0, event(type="order_placed", amount=80.5))
    assert after_order is not None and after_order["cart_open"] == 0
    consent = next_state(
        {"email_opt_in": 1, "sms_opt_in": 1, "push_opt_in": 0},
        0,
        event(type="consent_changed", channel="sms", opt_in=False),
    )
    assert consent == {"email_opt_in": 1, "sms_opt_in": 0, "push_opt_in": 0}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "ticket_opened", "customer_id": 1, "timestamp": T0, "ticket_id": 1}, "severity"),
        ({"type": "ticket_opened", "customer_id": 1, "timestamp": T0, "ticket_id": 1, "severity": 9}, "severity"),
        ({"type": "consent_changed", "customer_id": 1, "timestamp": T0, "channel": "fax", "opt_in": True}, "channel"),
        ({"type": "cart_abandoned", "customer_id": -3, "timestamp": T0, "cart_value": 1}, "customer_id"),
        ({"type": "meteor_strike", "customer_id": 1, "timestamp": T0}, "type"),
    ],
)
def test_malformed_events_name_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_event(payload)
    assert field in str(err.value)
