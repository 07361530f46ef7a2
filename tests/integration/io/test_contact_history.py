"""The bounded contact-history read (``DecisionLog.history``) against the full-row build, on SQLite and the real
PostgreSQL server: random histories, both ways of counting contacts, rows after the decision time, logs written
before the summaries existed, concurrent feedback."""

from __future__ import annotations

import random
import sqlite3
import threading
import uuid
from typing import Any

import pytest

from nextbest.core.contact import STREAK_CONTACTS, ContactSummary, History, HistoryBuilder
from nextbest.io.decision_log import FEW_SENDS, DecisionLog, DecisionRecord, FeedbackRecord, open_decision_log
from nextbest.io.decision_log.history import drop_statements

DAY, HOUR = 86_400, 3_600
NOW = 1_795_000_000.25
CHANNELS = ("email", "sms", "push", "web", "app")
ACTIONS = ("email_promo", "sms_reminder", "discount_10", "push_nudge", "help_content", "retired_offer")
FEEDBACK = ("impression", "click", "conversion", "dismissed")


def decision(customer: str, at: float, action: str, channel: str | None, control: bool = False) -> DecisionRecord:
    return DecisionRecord(
        decision_id=uuid.uuid4().hex, request_id=None, customer_id=customer, created_at=at, channel="web",
        action=action, action_channel=channel, probability=0.9, explored=False, control=control, degraded=False,
        reason=None, model_version="1", ruleset_version="r", catalog_version="c", feature_service="nba_v1",
    )  # fmt: skip


def feedback(d: DecisionRecord, kind: str, at: float) -> FeedbackRecord:
    return FeedbackRecord(uuid.uuid4().hex, d.decision_id, d.customer_id, at, kind)  # type: ignore[arg-type]


def fill(log: DecisionLog, rng: random.Random, customer: str, n: int, scale: float) -> None:
    """``n`` decisions of ``customer``, ages up to about ``scale`` seconds (a few after ``NOW``), with every kind
    of row the log can hold: the control action, the control group, no delivery channel, a channel outside the
    catalog, sends in the same second (and at the same instant), feedback before the send (clock skew), late
    (after a later send of the same action), repeated, and after ``NOW``."""
    previous: DecisionRecord | None = None
    for _ in range(n):
        roll = rng.random()
        if previous is not None and roll < 0.08:
            at = previous.created_at if roll < 0.02 else int(previous.created_at) + rng.random()
        else:
            at = NOW - rng.uniform(-0.05, 1.0) * scale
        action = rng.choice((*ACTIONS, "no_action"))
        channel = None if rng.random() < 0.04 else rng.choice((*CHANNELS, "fax", "web", "email"))
        d = decision(customer, at, action, channel, control=rng.random() < 0.04)
        log.record_decision(d)
        previous = d
        if rng.random() < 0.5:
            for _ in range(rng.choice((1, 1, 2, 3))):
                delay = rng.choice((rng.uniform(-600, 0), rng.uniform(0, 3_600), rng.uniform(0, 5 * DAY)))
                log.record_feedback(feedback(d, rng.choice(FEEDBACK), at + delay))


def check(log: DecisionLog, builder: HistoryBuilder, customer: str, now: float, since: float, delivered: bool) -> None:
    rows = log.contacts(customer, since, control_action=builder.control, delivered_only=delivered)
    expected = builder.build(rows, int(now))
    got = log.history(customer, builder, now, since=since, delivered_only=delivered)
    context = f"customer {customer}, now {now}, since {since}, delivered {delivered}, walk {builder.streak_contacts}"
    assert (got is None) == (not expected["days_since_action"]), context  # None: no contact in the window
    assert (got or builder.empty()) == expected, context


@pytest.mark.parametrize("seed", [1, 2])
def test_bounded_history_equals_the_full_row_build(log: DecisionLog, seed: int) -> None:
    rng = random.Random(seed)
    customers = {"hot": (260, 40 * DAY), "recent": (60, 4 * DAY), "sparse": (8, 60 * DAY), "7": (30, 20 * DAY)}
    for customer, (n, scale) in customers.items():
        fill(log, rng, customer, n, scale)
    builders = [HistoryBuilder(CHANNELS, streak_contacts=k) for k in (STREAK_CONTACTS, 64, 3, 1)]
    for customer in (*customers, "never-seen"):
        for now in (NOW, NOW - 2 * DAY - 1_234.5, NOW - 71.9 * HOUR):
            for days in (30, 10, 45):
                for delivered in (True, False):
                    for builder in builders:
                        check(log, builder, customer, now, now - days * DAY, delivered)


def test_window_hour_and_day_edges(log: DecisionLog) -> None:
    """Sends exactly on and around every bound the counts use: window starts, hour and day bucket starts,
    ``since`` and ``now``; decided at ``now`` on the last second of an hour, of a day, and mid-hour."""
    for now in (498_612.0 * HOUR - 1, 20_775.0 * DAY - 0.5, NOW):
        rng = random.Random(now)
        until = int(now) + 1
        customer = f"edges-{now}"
        times: set[float] = set()
        sinces = [s for days in (30, 10) for s in (now - days * DAY, float(until - days * DAY))]
        for span in (DAY, 7 * DAY, 30 * DAY, 10 * DAY):  # 10 days: the start of the shorter window read below
            lo = until - span
            for t in (lo, until, *(b - (b % s) for b in (lo, until) for s in (HOUR, DAY))):
                times.update(t + dt for dt in (-1, -0.5, 0, 0.5) if rng.random() < 0.7)
        sends = [(at, rng.choice(ACTIONS[:3]), rng.choice(CHANNELS[:2])) for at in sorted(times)]
        sends += [(since, f"only-at-since-{i}", "push") for i, since in enumerate(sinces)]
        sends += [(since - 0.25, f"only-before-since-{i}", "push") for i, since in enumerate(sinces)]
        for at, action, channel in sends:
            d = decision(customer, at, action, channel)
            log.record_decision(d)
            if rng.random() < 0.4:
                log.record_feedback(feedback(d, rng.choice(FEEDBACK), at + 1))
        for delivered in (True, False):
            for since in sinces:
                check(log, HistoryBuilder(CHANNELS), customer, now, since, delivered)


def test_feedback_the_walk_reads_at_its_edges(log: DecisionLog) -> None:
    """Feedback in the same second as the oldest contact walked (but earlier in it) belongs to it; feedback on a
    decision before ``since`` is not read, even when it arrives after a later send of the same action."""
    builder = HistoryBuilder(CHANNELS, streak_contacts=2)
    t0 = int(NOW - 20 * DAY)
    older = decision("e1", t0 - 100, "email_promo", "email")
    walked_last = decision("e1", t0 + 0.9, "email_promo", "email")
    newest = decision("e1", t0 + 50, "email_promo", "email")
    for d in (older, walked_last, newest):
        log.record_decision(d)
        log.record_feedback(feedback(d, "impression", d.created_at + 0.01))  # delivered, not engaged
    log.record_feedback(feedback(older, "click", t0 + 0.3))  # same second as walked_last: attaches to it
    for delivered in (True, False):
        check(log, builder, "e1", NOW, NOW - 30 * DAY, delivered)
        history = log.history("e1", builder, NOW, since=NOW - 30 * DAY, delivered_only=delivered)
        assert history is not None and history["ignored_streak"]["email"] == 1

    since = NOW - 10 * DAY
    before = decision("e2", since - 100, "email_promo", "email")
    inside = decision("e2", since + 500, "email_promo", "email")
    for d in (before, inside):
        log.record_decision(d)
        log.record_feedback(feedback(d, "impression", d.created_at + 1))
    log.record_feedback(feedback(before, "click", since + 1_000))  # after `inside`, but its decision is older
    for delivered in (True, False):
        check(log, builder, "e2", NOW, since, delivered)
        history = log.history("e2", builder, NOW, since=since, delivered_only=delivered)
        assert history is not None and history["ignored_streak"]["email"] == 1


def test_long_streaks_walk_the_latest_contacts_only(log: DecisionLog) -> None:
    """An ignored streak longer than the walk is reported as its length both ways, and the read stays bounded."""
    old = NOW - 10 * DAY
    engaged = decision("c", old - 1, "email_promo", "email")
    log.record_decision(engaged)
    log.record_feedback(feedback(engaged, "click", old))
    for i in range(150):
        d = decision("c", old + i * 60, "email_promo", "email")
        log.record_decision(d)
        log.record_feedback(feedback(d, "dismissed", d.created_at + 5))
    seen: list[ContactSummary] = []

    class Spy(HistoryBuilder):
        def summarize(self, summary: ContactSummary) -> History | None:
            seen.append(summary)
            return super().summarize(summary)

    builder = Spy(CHANNELS)
    for delivered in (True, False):
        check(log, builder, "c", NOW, NOW - 30 * DAY, delivered)
        history = log.history("c", builder, NOW, since=NOW - 30 * DAY, delivered_only=delivered)
        assert history is not None and history["ignored_streak"]["email"] == STREAK_CONTACTS
        assert history["channel_30d"]["email"] == 151  # type: ignore[index]
    assert all(len(s.recent) <= 2 * STREAK_CONTACTS + 4 for s in seen)  # the walk's sends and their feedback


def test_rows_after_now_and_contacts_only_after_it(log: DecisionLog) -> None:
    builder = HistoryBuilder(CHANNELS)
    future = decision("f", NOW + 30, "email_promo", "email")
    log.record_decision(future)
    log.record_feedback(feedback(future, "click", NOW + 40))
    assert log.history("f", builder, NOW, since=NOW - 30 * DAY) is None
    past = decision("f", NOW - 4 * DAY, "email_promo", "email")
    log.record_decision(past)
    log.record_feedback(feedback(past, "click", NOW + 10))  # a click arriving after now: not seen at now
    for delivered in (True, False):
        check(log, builder, "f", NOW, NOW - 30 * DAY, delivered)
        history = log.history("f", builder, NOW, since=NOW - 30 * DAY, delivered_only=delivered)
        assert history is not None and history["ignored_streak"]["email"] == 1  # 96 h old, its click not seen yet
        assert history["contacts_24h"] == 0 and history["contacts_7d"] == 1


def test_another_control_action_reads_the_full_rows(log: DecisionLog) -> None:
    builder = HistoryBuilder(CHANNELS, control="do_nothing")
    for action in ("do_nothing", "no_action", "email_promo"):
        log.record_decision(decision("x", NOW - HOUR, action, "email"))
    history = log.history("x", builder, NOW, since=NOW - 30 * DAY)
    assert history is not None and history["contacts_24h"] == 2  # no_action is an action like any other here
    check(log, builder, "x", NOW, NOW - 30 * DAY, False)


def test_concurrent_feedback_on_one_decision_counts_one_contact(log: DecisionLog) -> None:
    builder = HistoryBuilder(CHANNELS)
    ds = [decision("k", NOW - i * HOUR - 100, "sms_reminder", "sms") for i in range(6)]
    for d in ds:
        log.record_decision(d)
    errors: list[BaseException] = []

    def send(d: DecisionRecord, kind: str) -> None:
        try:
            log.record_feedback(feedback(d, kind, d.created_at + 30))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(d, k)) for d in ds for k in FEEDBACK for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    history = log.history("k", builder, NOW, since=NOW - 30 * DAY, delivered_only=True)
    assert history is not None and history["channel_24h"]["sms"] == 6  # type: ignore[index]
    check(log, builder, "k", NOW, NOW - 30 * DAY, True)


def _forget_summaries(url: str, log: DecisionLog) -> None:
    """Make ``url`` a log from before the summaries: no triggers, no summary tables."""
    n = log.history_names
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            for name in ("on_decision", "on_feedback"):
                conn.execute(f"DROP TRIGGER {n[name]}")
            for table in ("events", "counts", "latest"):
                conn.execute(f"DROP TABLE {n[table]}")
        return
    import psycopg

    prefix = url.split("table_prefix=")[1]
    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        conn.execute(f"DROP TRIGGER {n['on_decision']} ON {prefix}decisions")
        conn.execute(f"DROP TRIGGER {n['on_feedback']} ON {prefix}feedback")
        conn.execute(drop_statements(prefix)[1])
        conn.execute(f"DROP TABLE {n['events']}, {n['counts']}, {n['latest']}")


def test_a_log_from_before_the_summaries_is_filled_at_start_up(url: str) -> None:
    rng = random.Random(5)
    first = open_decision_log(url)
    try:
        fill(first, rng, "old", 120, 20 * DAY)
        _forget_summaries(url, first)
        fill(first, rng, "old", 10, 2 * DAY)  # written by a version without them: nothing maintained
    finally:
        first.close()
    again = open_decision_log(url)  # start-up: triggers missing, so the summaries are rebuilt from the rows
    try:
        for delivered in (True, False):
            for builder in (HistoryBuilder(CHANNELS), HistoryBuilder(CHANNELS, streak_contacts=2)):
                check(again, builder, "old", NOW, NOW - 30 * DAY, delivered)
        fill(again, rng, "old", 20, DAY)  # and kept current from then on
        check(again, HistoryBuilder(CHANNELS), "old", NOW, NOW - 30 * DAY, True)
    finally:
        again.close()
    reopened = open_decision_log(url)  # summaries present: opened as is, nothing counted twice
    try:
        check(reopened, HistoryBuilder(CHANNELS), "old", NOW, NOW - 30 * DAY, False)
    finally:
        reopened.close()


def test_runtime_history_is_the_bounded_read(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's read goes through ``DecisionLog.history`` with the service's window and counting rule."""
    from nextbest.serving.runtime import DecisionRuntime

    log = open_decision_log(url)
    try:
        fill(log, random.Random(9), "r", 80, 30 * DAY)
        builder = HistoryBuilder(CHANNELS)
        calls: list[dict[str, Any]] = []
        real = log.history

        def spy(*args: Any, **kw: Any) -> History | None:
            calls.append(kw)
            return real(*args, **kw)

        monkeypatch.setattr(log, "history", spy)
        rows = log.contacts

        def bounded_rows(*args: Any, **kw: Any) -> Any:  # a short history is read row by row, never a long one
            if log._sends(args[0], args[1], FEW_SENDS + 1) > FEW_SENDS:
                pytest.fail("the runtime must not read every row of a long history")
            return rows(*args, **kw)

        monkeypatch.setattr(log, "contacts", bounded_rows)

        class Stub:
            settings: Any = type("S", (), {"serving": type("V", (), {"history_days": 30, "contacts_from": "feedback"})})
            backends: Any = type("B", (), {"log": log})

        snap: Any = type("Snap", (), {"policy": type("P", (), {"history": builder})})
        got = DecisionRuntime._history(Stub(), snap, "r", NOW)  # type: ignore[arg-type]
        assert calls == [{"since": NOW - 30 * DAY, "delivered_only": True}]
        monkeypatch.undo()
        check(log, builder, "r", NOW, NOW - 30 * DAY, True)
        assert got == log.history("r", builder, NOW, since=NOW - 30 * DAY, delivered_only=True)
    finally:
        log.close()
