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
from typing import Any

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


class _Sql:
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


def tables_ddl(n: dict[str, str], sqlite: bool) -> list[str]:
    """``CREATE`` statements of the three tables and their indexes. A history read scans the events of a
    customer, kind and channel in time order: SQLite stores them in that order (a ``WITHOUT ROWID`` table keyed
    so; only feedback rows, updated by decision and kind, are indexed that way too); PostgreSQL keeps them in a
    covering index."""
    q = _Sql(sqlite)
    e, c, lt = n["events"], n["counts"], n["latest"]
    rowid = " WITHOUT ROWID" if sqlite else ""
    cols = (
        f"customer_id TEXT NOT NULL, kind TEXT NOT NULL, channel TEXT NOT NULL, ts {q.real} NOT NULL, "
        f"decision_id TEXT NOT NULL, action TEXT NOT NULL, sent_at {q.real} NOT NULL"
    )
    hours = ", ".join(f"c{h} BIGINT NOT NULL" for h in _HOURS)
    summaries = [
        f"CREATE TABLE IF NOT EXISTS {c} (customer_id TEXT NOT NULL, kind TEXT NOT NULL, day BIGINT NOT NULL, "
        f"channel TEXT NOT NULL, {hours}, PRIMARY KEY ({_COUNT_KEY})){rowid}",
        f"CREATE TABLE IF NOT EXISTS {lt} (customer_id TEXT NOT NULL, kind TEXT NOT NULL, channel TEXT NOT NULL, "
        f"action TEXT NOT NULL, last {q.real} NOT NULL, PRIMARY KEY ({_LATEST_KEY})){rowid}",
    ]
    if sqlite:
        return [
            f"CREATE TABLE IF NOT EXISTS {e} ({cols}, PRIMARY KEY (customer_id, kind, channel, ts, decision_id))"
            f"{rowid}",
            f"CREATE UNIQUE INDEX IF NOT EXISTS {n['by_id']} ON {e} (decision_id, kind) WHERE {_FEEDBACK_ROW}",
            *summaries,
        ]
    return [
        f"CREATE TABLE IF NOT EXISTS {e} ({cols}, PRIMARY KEY (decision_id, kind))",
        f"CREATE INDEX IF NOT EXISTS {n['by_channel']} ON {e} (customer_id, kind, channel, ts) "
        "INCLUDE (action, sent_at, decision_id)",
        *summaries,
    ]


def backfill(n: dict[str, str], d: str, f: str, sqlite: bool) -> list[str]:
    """Statements that fill empty summaries from the decision and feedback tables."""
    q = _Sql(sqlite)
    e, c, lt = n["events"], n["counts"], n["latest"]
    hours = ", ".join(f"SUM(CASE WHEN hk <= {h} THEN 1 ELSE 0 END)" for h in _HOURS)
    return [
        f"INSERT INTO {e} ({_EVENT_COLS}) SELECT customer_id, 'sent', action_channel, created_at, decision_id, "
        f"action, created_at FROM {d} WHERE {_IS_CONTACT.format(r='')}",
        f"INSERT INTO {e} ({_EVENT_COLS}) SELECT customer_id, 'delivered', channel, ts, decision_id, action, sent_at "
        f"FROM {e} s WHERE kind = 'sent' AND EXISTS (SELECT 1 FROM {f} x WHERE x.decision_id = s.decision_id)",
        f"INSERT INTO {e} ({_EVENT_COLS}) SELECT s.customer_id, "
        "CASE x.type WHEN 'dismissed' THEN 'ignored' ELSE x.type END, s.channel, "
        "CASE WHEN MIN(x.created_at) > s.sent_at THEN MIN(x.created_at) ELSE s.sent_at END, s.decision_id, "
        f"s.action, s.sent_at FROM {e} s JOIN {f} x ON x.decision_id = s.decision_id WHERE s.kind = 'sent' "
        "GROUP BY s.decision_id, x.type, s.customer_id, s.channel, s.action, s.sent_at",
        f"INSERT INTO {c} ({_COUNT_COLS}) SELECT customer_id, kind, day, channel, {hours} "
        f"FROM (SELECT customer_id, kind, channel, {q.day('sent_at')} AS day, {q.hour_of_day('sent_at')} AS hk "
        f"FROM {e} WHERE kind IN ('sent', 'delivered')) z GROUP BY customer_id, kind, day, channel",
        f"INSERT INTO {lt} ({_LATEST_COLS}) SELECT customer_id, kind, channel, action, MAX(sent_at) "
        f"FROM {e} WHERE kind IN ('sent', 'delivered') GROUP BY customer_id, kind, channel, action",
    ]


def sqlite_triggers(n: dict[str, str], d: str, f: str) -> list[str]:
    """The two triggers in SQLite (writers are serialized, so "first feedback" is "no ``delivered`` row yet").
    The feedback trigger finds the decision through the decisions table's key."""
    q = _Sql(sqlite=True)
    e, c, lt = n["events"], n["counts"], n["latest"]
    new = "SELECT NEW.customer_id AS cu, NEW.action_channel AS ch, NEW.action AS action, NEW.created_at AS t"
    contact = (
        f"SELECT x.customer_id AS cu, x.action_channel AS ch, x.action AS action, x.created_at AS t, "
        f"x.decision_id AS id FROM {d} x WHERE x.decision_id = NEW.decision_id AND {_IS_CONTACT.format(r='x.')}"
    )
    first = (
        f"{contact} AND NOT EXISTS (SELECT 1 FROM {e} y WHERE y.customer_id = x.customer_id AND y.kind = 'delivered' "
        "AND y.channel = x.action_channel AND y.ts = x.created_at AND y.decision_id = x.decision_id)"
    )
    outcome = "CASE NEW.type WHEN 'dismissed' THEN 'ignored' ELSE NEW.type END"
    return [
        f"CREATE TRIGGER {n['on_decision']} AFTER INSERT ON {d} WHEN {_IS_CONTACT.format(r='NEW.')} BEGIN "
        f"INSERT INTO {e} ({_EVENT_COLS}) VALUES (NEW.customer_id, 'sent', NEW.action_channel, NEW.created_at, "
        "NEW.decision_id, NEW.action, NEW.created_at) ON CONFLICT DO NOTHING; "
        f"{q.count(c, 'sent', new)}; {q.latest(lt, 'sent', new)}; END",
        f"CREATE TRIGGER {n['on_feedback']} AFTER INSERT ON {f} BEGIN "
        f"{q.count(c, 'delivered', first)}; {q.latest(lt, 'delivered', contact)}; "
        f"INSERT INTO {e} ({_EVENT_COLS}) SELECT cu, 'delivered', ch, t, id, action, t FROM ({contact}) s0 "
        "WHERE true ON CONFLICT DO NOTHING; "
        f"INSERT INTO {e} ({_EVENT_COLS}) SELECT cu, {outcome}, ch, MAX(t, NEW.created_at), id, action, t "
        f"FROM ({contact}) s0 WHERE true ON CONFLICT (decision_id, kind) WHERE {_FEEDBACK_ROW} "
        "DO UPDATE SET ts = MIN(ts, excluded.ts); END",
    ]


def postgres_triggers(n: dict[str, str], d: str, f: str) -> list[str]:
    """The trigger functions and triggers in PostgreSQL. Concurrent feedback on one decision: the second insert
    of its ``delivered`` row waits for the first and inserts nothing, so the contact is counted once."""
    q = _Sql(sqlite=False)
    e, c, lt = n["events"], n["counts"], n["latest"]
    new = "SELECT NEW.customer_id AS cu, NEW.action_channel AS ch, NEW.action AS action, NEW.created_at AS t"
    sent = "SELECT s.customer_id AS cu, s.channel AS ch, s.action AS action, s.sent_at AS t"
    on_decision = (
        f"CREATE OR REPLACE FUNCTION {n['on_decision']}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN "
        f"INSERT INTO {e} ({_EVENT_COLS}) VALUES (NEW.customer_id, 'sent', NEW.action_channel, NEW.created_at, "
        "NEW.decision_id, NEW.action, NEW.created_at) ON CONFLICT DO NOTHING; "
        f"IF FOUND THEN {q.count(c, 'sent', new)}; {q.latest(lt, 'sent', new)}; END IF; "
        "RETURN NULL; END $fn$"
    )
    on_feedback = (
        f"CREATE OR REPLACE FUNCTION {n['on_feedback']}() RETURNS trigger LANGUAGE plpgsql AS $fn$ "
        "DECLARE s RECORD; BEGIN "
        f"SELECT customer_id, channel, action, sent_at INTO s FROM {e} "
        "WHERE decision_id = NEW.decision_id AND kind = 'sent'; "
        "IF NOT FOUND THEN RETURN NULL; END IF; "
        f"INSERT INTO {e} ({_EVENT_COLS}) VALUES (s.customer_id, 'delivered', s.channel, s.sent_at, "
        "NEW.decision_id, s.action, s.sent_at) ON CONFLICT DO NOTHING; "
        f"IF FOUND THEN {q.count(c, 'delivered', sent)}; {q.latest(lt, 'delivered', sent)}; END IF; "
        f"INSERT INTO {e} ({_EVENT_COLS}) VALUES (s.customer_id, "
        "CASE NEW.type WHEN 'dismissed' THEN 'ignored' ELSE NEW.type END, s.channel, "
        "GREATEST(s.sent_at, NEW.created_at), NEW.decision_id, s.action, s.sent_at) "
        f"ON CONFLICT (decision_id, kind) DO UPDATE SET ts = LEAST({e}.ts, EXCLUDED.ts); "
        "RETURN NULL; END $fn$"
    )
    return [
        on_decision,
        on_feedback,
        f"CREATE OR REPLACE TRIGGER {n['on_decision']} AFTER INSERT ON {d} FOR EACH ROW "
        f"WHEN ({_IS_CONTACT.format(r='NEW.')}) EXECUTE FUNCTION {n['on_decision']}()",
        f"CREATE OR REPLACE TRIGGER {n['on_feedback']} AFTER INSERT ON {f} FOR EACH ROW "
        f"EXECUTE FUNCTION {n['on_feedback']}()",
    ]


def sqlite_schema(cur: Any, n: dict[str, str], d: str, f: str) -> None:
    """Create and fill the summaries (``n``: :func:`names`) of a SQLite log unless its triggers exist (one
    transaction: a writer in another process waits, and finds them current)."""
    triggers = (n["on_decision"], n["on_feedback"])

    def present() -> bool:
        found = cur.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (?, ?)", triggers
        ).fetchone()
        return bool(found[0] == 2)

    if present():
        return
    conn = cur.connection
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not present():
            for name in triggers:
                conn.execute(f"DROP TRIGGER IF EXISTS {name}")
            for ddl in tables_ddl(n, sqlite=True):
                conn.execute(ddl)
            for table in ("events", "counts", "latest"):
                conn.execute(f"DELETE FROM {n[table]}")
            for ddl in sqlite_triggers(n, d, f):
                conn.execute(ddl)
            for sql in backfill(n, d, f, sqlite=True):
                conn.execute(sql)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def postgres_schema(cur: Any, n: dict[str, str], d: str, f: str) -> None:
    """Create and fill the summaries (``n``: :func:`names`) of a PostgreSQL log unless its triggers exist; runs
    in the schema transaction, under its advisory lock (creating a trigger also holds off writers until the
    commit)."""
    triggers = [n["on_decision"].lower(), n["on_feedback"].lower()]
    cur.execute(
        "SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname = ANY(%s) "
        "AND tgrelid IN (to_regclass(%s), to_regclass(%s))",
        (triggers, d, f),
    )
    if cur.fetchone()[0] == 2:
        return
    for ddl in tables_ddl(n, sqlite=False):
        cur.execute(ddl)
    for table in ("events", "counts", "latest"):
        cur.execute(f"DELETE FROM {n[table]}")
    for ddl in postgres_triggers(n, d, f):  # before the backfill: rows written from now on fire them
        cur.execute(ddl)
    for sql in backfill(n, d, f, sqlite=False):
        cur.execute(sql)


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
    q = _Sql(sqlite=placeholder == "?")
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
