"""The contact-history summaries' tables, the triggers that keep them current and the backfill of an older
log, for both backends (what they hold and why: ``history.py``)."""

from __future__ import annotations

from typing import Any

from nextbest.io.decision_log.history import (
    _COUNT_COLS,
    _COUNT_KEY,
    _EVENT_COLS,
    _FEEDBACK_ROW,
    _HOURS,
    _IS_CONTACT,
    _LATEST_COLS,
    _LATEST_KEY,
    SqlDialect,
)


def tables_ddl(n: dict[str, str], sqlite: bool) -> list[str]:
    """``CREATE`` statements of the three tables and their indexes. A history read scans the events of a
    customer, kind and channel in time order: SQLite stores them in that order (a ``WITHOUT ROWID`` table keyed
    so; only feedback rows, updated by decision and kind, are indexed that way too); PostgreSQL keeps them in a
    covering index."""
    q = SqlDialect(sqlite)
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
    q = SqlDialect(sqlite)
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
    q = SqlDialect(sqlite=True)
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
    q = SqlDialect(sqlite=False)
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
