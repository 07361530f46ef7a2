"""Contact history -> the ``history`` map rules read."""

from __future__ import annotations

import random

import pytest

from nextbest.core.contact import HISTORY_FIELDS, Contact, HistoryBuilder

NOW = 1_800_000_000
H = 3600
CHANNELS = ("email", "sms", "push", "web", "app")


@pytest.fixture
def builder() -> HistoryBuilder:
    return HistoryBuilder(CHANNELS, control="no_action")


def test_windows_count_sends_per_channel_and_ignore_the_future_and_the_control(builder: HistoryBuilder) -> None:
    rows = [
        Contact(NOW - 1 * H, "email_promo", "email", "sent"),
        Contact(NOW - 24 * H, "email_promo", "email", "sent"),  # exactly 24 h: outside the 24 h window
        Contact(NOW - 3 * 24 * H, "sms_reminder", "sms", "sent"),
        Contact(NOW - 10 * 24 * H, "push_nudge", "push", "sent"),
        Contact(NOW - 40 * 24 * H, "push_nudge", "push", "sent"),  # only in days_since_action
        Contact(NOW - 2 * H, "email_promo", "email", "click"),  # feedback is not a contact
        Contact(NOW - 5 * H, "no_action", "email", "sent"),  # the control is not a contact
        Contact(NOW + 5 * H, "discount_10", "email", "sent"),  # after the decision time
    ]
    h = builder.build(rows, NOW)
    assert set(h) == set(HISTORY_FIELDS)
    assert (h["contacts_24h"], h["contacts_7d"], h["contacts_30d"]) == (1, 3, 4)
    assert h["channel_24h"] == {"email": 1, "sms": 0, "push": 0, "web": 0, "app": 0}
    assert h["channel_7d"] == {"email": 2, "sms": 1, "push": 0, "web": 0, "app": 0}
    assert h["channel_30d"] == {"email": 2, "sms": 1, "push": 1, "web": 0, "app": 0}
    assert h["days_since_action"] == pytest.approx({"email_promo": 1 / 24, "sms_reminder": 3.0, "push_nudge": 10.0})


def test_ignored_streak_definition(builder: HistoryBuilder) -> None:
    email = [
        Contact(NOW - 10 * H, "email_promo", "email", "sent"),  # pending: younger than 72 h, skipped
        Contact(NOW - 100 * H, "email_promo", "email", "sent"),  # ignored: old, no feedback
        Contact(NOW - 99 * H, "email_promo", "email", "impression"),  # an impression is not engagement
        Contact(NOW - 200 * H, "discount_10", "email", "sent"),  # ignored
        Contact(NOW - 300 * H, "discount_10", "email", "sent"),  # engaged: stops the streak
        Contact(NOW - 250 * H, "discount_10", "email", "click"),  # belongs to the send at 300 h, not 200 h
        Contact(NOW - 400 * H, "email_promo", "email", "sent"),  # older than the engaged one: not counted
    ]
    sms = [
        Contact(NOW - 5 * H, "sms_reminder", "sms", "sent"),
        Contact(NOW - 4 * H, "sms_reminder", "sms", "ignored"),  # explicitly ignored, even though young
        Contact(NOW - 6 * H, "sms_reminder", "push", "conversion"),  # other channel: not this send's feedback
    ]
    h = builder.build(email + sms, NOW)
    assert h["ignored_streak"] == {"email": 2, "sms": 1, "push": 0, "web": 0, "app": 0}
    engaged_latest = builder.build([*email, Contact(NOW - 9 * H, "email_promo", "email", "conversion")], NOW)
    assert engaged_latest["ignored_streak"]["email"] == 0


def test_order_independence_columns_and_empty(builder: HistoryBuilder) -> None:
    rng = random.Random(3)
    rows = [
        Contact(
            NOW - rng.randrange(0, 40 * 24 * H),
            rng.choice(["a", "b", "c"]),
            rng.choice(CHANNELS[:3]),
            rng.choice(["sent", "sent", "click", "ignored", "impression", "conversion"]),
        )
        for _ in range(200)
    ]
    reference = builder.build(rows, NOW)
    shuffled = rows[:]
    rng.shuffle(shuffled)
    assert builder.build(shuffled, NOW) == reference
    columns = [list(c) for c in zip(*rows, strict=True)]
    assert builder.build_columns(*columns, now=NOW) == reference  # type: ignore[arg-type]
    assert builder.build([], NOW) == builder.empty()
    assert reference["contacts_30d"] == sum(1 for r in rows if r.outcome == "sent" and NOW - r.ts < 30 * 24 * H)


def test_unknown_outcome_is_rejected(builder: HistoryBuilder) -> None:
    with pytest.raises(ValueError, match="unknown contact outcome 'opened'"):
        builder.build([(NOW, "a", "email", "opened")], NOW)
