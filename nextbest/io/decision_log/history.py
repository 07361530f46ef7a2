"""Contact-history summaries the decision log keeps, so a decision's history read is bounded.

Reading a customer's every contact per decision made a decision's cost grow with the customer's history (a web
channel asking on every page view logs thousands). The log instead keeps, written by triggers in the same
statement as the decision or feedback row (so every writer, an older replica included, keeps them current):

* ``<prefix>contact_events``: one row per contact and per kind of feedback on it, in the vocabulary of
  :class:`nextbest.core.contact.HistoryBuilder`: ``sent`` (a served decision that is not in the control group,
  has a delivery channel and is not the control action), ``delivered`` (the same contact once it has feedback:
  what counts with ``contacts_from=feedback``), and ``impression``, ``click``, ``conversion``, ``ignored``
  (``dismissed``) at the first arrival of that kind, never before the send (``ts``);
* ``<prefix>contact_counts``: running counts of ``sent`` and ``delivered`` contacts per customer, channel and
  day of the send time, cumulated over the day's hours (``c0`` ... ``c23``: contacts up to the end of that
  hour; ``c23`` is the day's): one row written per contact;
* ``<prefix>contact_latest``: the time of the latest ``sent`` and ``delivered`` contact per customer, channel
  and action.

:func:`history_statement` reads, in one statement, what :class:`nextbest.core.contact.ContactSummary`
holds: the customer's ``contact_latest`` rows (their channels and actions, and ``days_since_action``), at most
31 day rows per channel plus the rows of four partial hours for the counts, and per channel the rows the
ignored streak walks. Its cost depends on the catalog and the customer's contact rate, not on the length of
their history.

The tables are created, with their triggers, and filled from the existing rows at start-up when their triggers
are missing (a log from before them, or a SQLite log whose tables were rebuilt by a migration).
The control action is fixed here (:data:`CONTROL`): a catalog with another control reads the full rows.
"""

from __future__ import annotations

import re

from nextbest.core.contact import DAY, HOUR, Bounds, floor_to

CONTROL = "no_action"
FEEDBACK_KINDS = ("impression", "click", "conversion", "ignored")
STREAK_KINDS = ("click", "conversion", "ignored")  # the feedback an ignored streak reads (not impressions)
ENGAGED_KINDS = ("click", "conversion")
_HOURS = range(DAY // HOUR)
_EVENT_COLS = "customer_id, kind, channel, ts, decision_id, action, sent_at"
_COUNT_KEY = "customer_id, kind, channel, day"
_COUNT_COLS = f"customer_id, kind, day, channel, {', '.join(f'c{h}' for h in _HOURS)}"  # the order inserts use
_DAY_TOTAL = f"c{_HOURS[-1]}"
_LATEST_KEY = "customer_id, kind, channel, action"
_LATEST_COLS = f"{_LATEST_KEY}, last"
_IS_CONTACT = f"NOT {{r}}control AND {{r}}action_channel IS NOT NULL AND {{r}}action <> '{CONTROL}'"
_FEEDBACK_ROW = f"kind IN ({', '.join(repr(k) for k in FEEDBACK_KINDS)})"


def names(prefix: str) -> dict[str, str]:
    """Table, index, trigger and function names of the summaries for ``prefix`` (within 63 characters)."""
    return {
        "events": f"{prefix}contact_events",
        "counts": f"{prefix}contact_counts",
        "latest": f"{prefix}contact_latest",
        "by_channel": f"{prefix}ce_channel",
        "by_id": f"{prefix}ce_id",
        "on_decision": f"{prefix}ce_on_decision",
        "on_feedback": f"{prefix}ce_on_feedback",
    }


def drop_statements(prefix: str) -> list[str]:
    """PostgreSQL statements that drop a log's tables with everything this module adds (tests, benchmarks)."""
    n = names(prefix)
    return [
        f"DROP TABLE IF EXISTS {n['latest']}, {n['counts']}, {n['events']}, {prefix}feedback, {prefix}decisions",
        f"DROP FUNCTION IF EXISTS {n['on_decision']}(), {n['on_feedback']}()",
    ]


class SqlDialect:
    """What differs between the two backends' SQL: integer floor (PostgreSQL rounds a cast to an integer, SQLite
    truncates), the scalar maximum and minimum, and table options."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self.real = "REAL" if sqlite else "DOUBLE PRECISION"
        self.greatest, self.least = ("MAX", "MIN") if sqlite else ("GREATEST", "LEAST")

    def floor(self, x: str) -> str:
        return (
            f"(CAST({x} AS INTEGER) - (CAST({x} AS INTEGER) > {x}))" if self.sqlite else f"CAST(floor({x}) AS BIGINT)"
        )

    def day(self, t: str) -> str:
        return f"{self.floor(f'{t} / {DAY}')} * {DAY}"

    def hour_of_day(self, t: str) -> str:
        return f"{self.floor(f'{t} / {HOUR}')} - {self.floor(f'{t} / {DAY}')} * {DAY // HOUR}"

    def count(self, c: str, kind: str, source: str) -> str:
        """Add one to the day, from the hour on, of every contact ``source`` selects as ``(cu, ch, t)``."""
        hours = ", ".join(f"CASE WHEN hk <= {h} THEN 1 ELSE 0 END" for h in _HOURS)
        add = ", ".join(f"c{h} = {c}.c{h} + excluded.c{h}" for h in _HOURS)
        return (
            f"INSERT INTO {c} ({_COUNT_COLS}) SELECT cu, '{kind}', day, ch, {hours} "
            f"FROM (SELECT cu, ch, {self.day('t')} AS day, {self.hour_of_day('t')} AS hk FROM ({source}) s0) z "
            f"WHERE true ON CONFLICT ({_COUNT_KEY}) DO UPDATE SET {add}"
        )

    def before_hour(self, hod: str) -> str:
        """A day row's contacts before hour ``hod`` (a parameter): one column, picked without evaluating a
        condition per hour (PostgreSQL builds every expression of a statement at each execution)."""
        if self.sqlite:
            return f"CASE {hod} " + " ".join(f"WHEN {h + 1} THEN c{h}" for h in _HOURS[:-1]) + " ELSE 0 END"
        return f"(ARRAY[0, {', '.join(f'c{h}' for h in _HOURS[:-1])}])[CAST({hod} AS INTEGER) + 1]"

    def latest(self, lt: str, kind: str, source: str) -> str:
        """Keep the latest send time of every ``(cu, ch, action, t)`` ``source`` selects."""
        return (
            f"INSERT INTO {lt} ({_LATEST_COLS}) SELECT cu, '{kind}', ch, action, t FROM ({source}) s0 WHERE true "
            f"ON CONFLICT ({_LATEST_KEY}) DO UPDATE SET last = {self.greatest}({lt}.last, excluded.last)"
        )


def history_statement(n: dict[str, str], placeholder: str = "?") -> str:
    """The summary read, with named parameters (:func:`history_params`) in the style of the backend's driver
    (``:name`` for SQLite's, ``%(name)s`` for psycopg's). Each row is ``(tag, name, action, kind, decision_id,
    a, b, c, d)``:

    * ``C``, channel: its contacts per window. Window ``j`` starts at point ``p[j]`` and every window ends at
      ``p[3]`` (``until``); with ``P(t)`` the contacts from the start of ``t``'s day to ``t`` (the hours before
      ``t``'s hour from the day's row, then the rows of ``t``'s hour), window ``j`` holds ``days[day(p[j]),
      day(p[3])) - P(p[j]) + P(p[3])``: the row has the first two terms of each window in ``a``, ``b``, ``c``
      and ``P(p[3])`` in ``d``. One seek per term: at most 30 day rows and 4 partial hours of rows per channel;
    * ``A``, action: the send time of its latest contact before ``until`` (in ``a``; the caller drops it when
      before ``since``): ``contact_latest``, or, for a channel with a contact after ``until`` (a replay, a clock
      ahead), the channel's latest row of the action before ``until``;
    * ``S``, channel, action, kind, decision id: a row of the channel in ``[since, until)`` at or after (one
      second before) the later of its ``skip + 1``-th latest contact and the send time of its latest click or
      conversion (where the walk stops): ``ts`` in ``a``, the send time in ``b``; sends of the read kind and
      the feedback a streak reads.

    The channels and actions are the customer's ``contact_latest`` rows: nothing here reads a row per contact
    beyond those bounds. Every subquery appears once (no CTE is referenced where SQLite would inline it twice,
    and none is materialized: SQLite's temporary tables cost more than these small reads).
    """
    q = SqlDialect(sqlite=placeholder == "?")
    e, c, lt = n["events"], n["counts"], n["latest"]
    real, text = "CAST({} AS DOUBLE PRECISION)", "CAST(NULL AS TEXT)"
    null3 = f"{text}, {text}, {text}"
    zero = real.format(0)
    mine = "customer_id = :cu AND kind = :kind"

    def hours_before(i: int) -> str:  # the contacts of point i's day before point i's hour
        return (
            f"(SELECT COALESCE(SUM({q.before_hour(f':hod{i}')}), 0) FROM {c} WHERE {mine} AND channel = ch.x "
            f"AND day = :day{i})"
        )

    def partial(i: int) -> str:  # the contacts from the start of point i's day to point i
        rows = f"(SELECT COUNT(*) FROM {e} WHERE {mine} AND channel = ch.x AND ts >= :hour{i} AND ts < :p{i})"
        return f"{hours_before(i)} + {rows}"

    days = (
        f"(SELECT COALESCE(SUM({_DAY_TOTAL}), 0) FROM {c} WHERE {mine} AND channel = ch.x AND day >= :day{{j}} "
        "AND day < :day3)"
    )
    counts = [real.format(f"{days.format(j=j)} - ({partial(j)})") for j in range(3)]
    counts.append(real.format(partial(3)))
    streak = ", ".join(f"'{k}'" for k in STREAK_KINDS)
    before_until = (
        f"SELECT ts FROM {e} WHERE {mine} AND channel = lt.channel AND ts < :until AND action = lt.action "
        "ORDER BY ts DESC LIMIT 1"
    )
    latest = f"MAX(CASE WHEN lt.last < :until THEN lt.last ELSE ({before_until}) END)"
    # Where the channel's walk starts: its skip + 1-th latest contact, or the send time of its latest click
    # (conversion) when later: the walk stops at a contact at least that recent (the click's own decision is a
    # contact of its action and channel, and the click belongs to that one or a later one).
    bounds = [
        f"SELECT ts FROM {e} WHERE {mine} AND channel = ch.x AND ts >= :since AND ts < :until "
        "ORDER BY ts DESC LIMIT 1 OFFSET :skip",
        *(
            f"SELECT sent_at FROM {e} WHERE customer_id = :cu AND kind = '{k}' AND channel = ch.x AND ts < :until "
            "ORDER BY ts DESC LIMIT 1"
            for k in ENGAGED_KINDS
        ),
    ]
    start = f"{q.greatest}({', '.join(f'COALESCE(({b}) - 1, :since)' for b in bounds)})"
    rows = (
        f"s.customer_id = :cu AND s.channel = w.x AND s.kind IN (:kind, {streak}) AND s.ts >= w.lo "
        "AND s.ts < :until AND s.sent_at >= :since"
    )
    cols = "s.channel, s.action, s.kind, s.decision_id, s.ts, s.sent_at"
    walk = f"{e} s WHERE {rows}" if q.sqlite else f"LATERAL (SELECT {cols} FROM {e} s WHERE {rows} OFFSET 0) s"
    return _named(
        f"WITH lt(channel, action, last) AS (SELECT channel, action, last FROM {lt} WHERE {mine}), "
        "ch(x) AS (SELECT DISTINCT channel FROM lt) "
        f"SELECT 'C', ch.x, {null3}, {', '.join(counts)} FROM ch "
        f"UNION ALL SELECT 'A', lt.action, {null3}, {real.format(latest)}, {zero}, {zero}, {zero} "
        "FROM lt GROUP BY lt.action "
        f"UNION ALL SELECT 'S', s.channel, s.action, s.kind, s.decision_id, {real.format('s.ts')}, "
        f"{real.format('s.sent_at')}, {zero}, {zero} "
        # The walk's start once per channel (a LIMIT keeps SQLite from inlining it into the join's every
        # lookup), then the channel's rows from there, by index: CROSS JOIN keeps that order in SQLite, LATERAL
        # in PostgreSQL (whose estimates may prefer scanning the whole table when one customer dominates it).
        f"FROM (SELECT x, {start} AS lo FROM ch LIMIT 1000000) w CROSS JOIN {walk}",
        placeholder,
    )


def _named(sql: str, placeholder: str) -> str:
    return sql if placeholder == "?" else re.sub(r":([a-z]\w*)", r"%(\1)s", sql)


def history_params(customer: str, bounds: Bounds, delivered_only: bool, walk: int) -> dict[str, object]:
    """The parameters of :func:`history_statement` for one customer and :class:`Bounds` (``walk``: how many
    latest contacts per channel the streak needs)."""
    values: dict[str, object] = {
        "cu": customer,
        "kind": "delivered" if delivered_only else "sent",
        "since": bounds.since,
        "until": float(bounds.until),
        "skip": max(int(walk) - 1, 0),
    }
    for i, p in enumerate(bounds.points):
        day, hour = floor_to(p, DAY), floor_to(p, HOUR)
        values.update({f"p{i}": p, f"day{i}": day, f"hour{i}": hour, f"hod{i}": (hour - day) // HOUR})
    return values
