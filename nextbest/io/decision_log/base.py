"""The durable decision log: every decision and every feedback event, written before the response is sent.

Two backends share this interface and its SQL: SQLite (the embedded default, one file under ``NEXTBEST_HOME``)
and PostgreSQL (several service replicas, chosen by ``decision_log_url``). Each write is one committed
statement, so a decision is durable when its method returns; there is deliberately no background queue.

Idempotency lives in the database, not in Python: ``request_id`` and ``decision_id`` are UNIQUE and inserts
are ``ON CONFLICT DO NOTHING``, so concurrent requests with the same ``request_id`` (in one process or across
replicas) produce exactly one row and every caller gets that row back. Re-recording a known ``decision_id``
(the service replaying its local spool) is a no-op instead of an error that would block the spool forever.

``contacts`` returns rows in the format and vocabulary of :class:`nextbest.core.contact.HistoryBuilder`: one
``sent`` row per served contact plus one row per kind of feedback on it (``impression``, ``click``,
``conversion``; ``dismissed`` feedback becomes ``ignored``). ``history`` is what a decision reads instead: the
same map from summaries the log keeps (``nextbest/io/decision_log/history.py``), at a cost that does not grow with the
customer's history. ``training_rows`` is what retraining reads (with the other window reads, ``reads.py``).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from nextbest.core.contact import Bounds, ContactSummary, History, HistoryBuilder
from nextbest.errors import ConfigError, DataError, NotFoundError
from nextbest.io.decision_log.history import CONTROL, history_params, history_statement, names
from nextbest.io.decision_log.reads import WindowReads
from nextbest.io.decision_log.records import (
    CONTACT_OUTCOME,
    FEEDBACK_TYPES,
    DecisionRecord,
    FeedbackRecord,
)
from nextbest.io.decision_log.sql import (
    customer_key,
    decode_decision,
    dumps,
    encode_decision,
    statements,
)

T = TypeVar("T")
DEFAULT_PREFIX = "nextbest_"
#: A customer with at most this many sends in the window has their history built from their rows (at most
#: these sends and a row per kind of feedback on each); beyond, from the summaries. Bounded either way.
FEW_SENDS = 24
_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


class DecisionLog(WindowReads):
    """Backend-neutral logic over DB-API cursors. A backend supplies connections (:meth:`_run`) and DDL.

    SQL here is written with ``?`` placeholders; PostgreSQL's backend rewrites them to ``%s``.
    """

    placeholder = "?"
    #: Read a customer with few sends row by row (a cheap probe first) instead of the summaries' statement: on
    #: SQLite a decision pays for that statement's planning, not a round trip (benchmarks/decision_log.py).
    short_histories_by_row = True

    def __init__(self, url: str, table_prefix: str = DEFAULT_PREFIX) -> None:
        if not _PREFIX_RE.fullmatch(table_prefix):
            raise ConfigError(f"decision log table prefix {table_prefix!r} must be a short SQL identifier")
        self.url = url  # already without password
        self.decisions_table = d = f"{table_prefix}decisions"
        self.feedback_table = f = f"{table_prefix}feedback"
        self.tables = (d, f)
        self._sql = {k: v.replace("?", self.placeholder) for k, v in statements(d, f).items()}
        self.history_names = names(table_prefix)  # the contact-history summaries (history.py)
        self._sql["history"] = history_statement(self.history_names, self.placeholder)  # named parameters

    # Backend hooks -------------------------------------------------------------------------------------------
    @abstractmethod
    def _run(self, op: Callable[[Any], T], write: bool = False) -> T:
        """Run ``op(cursor)`` on this thread's connection; when it returns, any write is committed."""

    def ping(self) -> bool:
        """True when the backend answers (readiness); never raises."""
        try:
            return bool(self._run(lambda cur: cur.execute("SELECT 1").fetchone()) == (1,))
        except Exception:
            return False

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Decisions -----------------------------------------------------------------------------------------------
    def record_decision(self, rec: DecisionRecord) -> tuple[DecisionRecord, bool]:
        """Write ``rec`` unless its ``request_id`` (or ``decision_id``) is already logged.

        Returns ``(stored, created)``: ``created`` is False when an earlier decision with the same request_id
        exists; ``stored`` is then that decision, which the caller should answer with.
        """
        row = encode_decision(rec.__dict__)
        attempts = 0

        def op(cur: Any) -> Any:
            nonlocal attempts
            attempts += 1
            cur.execute(self._sql["insert_decision"], row)
            if cur.rowcount == 1:
                return None
            if rec.request_id is not None:
                cur.execute(self._sql["by_request"], (rec.request_id,))
                found = cur.fetchone()
                if found is not None:
                    return found
            cur.execute(self._sql["by_id"], (rec.decision_id,))
            return cur.fetchone()

        found = self._run(op, write=True)
        if found is None:
            return rec, True
        stored = self._decode(found)
        # A retry after a connection broke mid-commit finds its own row: that write did succeed.
        return stored, attempts > 1 and stored.decision_id == rec.decision_id

    def record_decisions(self, records: Sequence[DecisionRecord]) -> int:
        """Write many decisions (an outbound campaign) in one transaction; those whose ``decision_id`` or
        ``request_id`` is already logged are left as they are (a re-run of the same batch writes nothing).
        All or none: on an error nothing of ``records`` is written. Returns how many were new."""
        if not records:
            return 0
        rows = [encode_decision(rec.__dict__) for rec in records]

        def op(cur: Any) -> int:
            with self._transaction(cur):
                cur.executemany(self._sql["insert_decision"], rows)
                return int(cur.rowcount)  # summed over the rows by both drivers; a conflict counts 0

        return self._run(op, write=True)

    @abstractmethod
    def _transaction(self, cur: Any) -> AbstractContextManager[None]:
        """A transaction on the cursor's connection: committed on exit, rolled back on an exception."""

    def get(self, decision_id: str) -> DecisionRecord | None:
        return self._one("by_id", decision_id)

    def find_by_request(self, request_id: str) -> DecisionRecord | None:
        return self._one("by_request", request_id)

    def _one(self, query: str, key: str) -> DecisionRecord | None:
        def op(cur: Any) -> Any:
            cur.execute(self._sql[query], (key,))
            return cur.fetchone()

        found = self._run(op)
        return None if found is None else self._decode(found)

    def _decode(self, row: Any) -> DecisionRecord:
        return DecisionRecord(**decode_decision(row))

    # Feedback ------------------------------------------------------------------------------------------------
    def record_feedback(self, fb: FeedbackRecord) -> bool:
        """Write one feedback event; False when its ``feedback_id`` was already recorded (nothing written).

        Raises NotFoundError for an unknown decision and DataError when the customer does not match it.
        """
        if fb.type not in FEEDBACK_TYPES:
            raise DataError(f"feedback type {fb.type!r} is not one of {list(FEEDBACK_TYPES)}")
        customer = customer_key(fb.customer_id)
        row = (fb.feedback_id, fb.decision_id, customer, float(fb.created_at), fb.type,
               None if fb.revenue is None else float(fb.revenue), dumps(fb.payload))  # fmt: skip
        attempts = 0

        def op(cur: Any) -> int | None:
            nonlocal attempts
            attempts += 1
            cur.execute(self._sql["owner"], (fb.decision_id,))
            owner = cur.fetchone()
            if owner is None:
                raise NotFoundError(f"decision {fb.decision_id} does not exist")
            if customer_key(owner[0]) != customer:
                raise DataError(f"decision {fb.decision_id} belongs to customer {owner[0]}, not {customer}")
            cur.execute(self._sql["insert_feedback"], row)
            return int(cur.rowcount)

        # After a reconnect, a conflict is most likely our own first attempt, committed before the link broke.
        return self._run(op, write=True) == 1 or attempts > 1

    # Reads for decisions and retraining ----------------------------------------------------------------------
    def contacts(
        self, customer_id: str | int, since: float, *, control_action: str = "no_action", delivered_only: bool = False
    ) -> list[tuple[int, str, str, str]]:
        """The customer's contact history since ``since`` as ``HistoryBuilder`` rows ``(ts, action, channel,
        outcome)``, oldest first: a ``sent`` row per served decision that is not in the control group, has a
        delivery channel and is not ``control_action`` (with ``delivered_only``, only decisions with feedback,
        i.e. that the caller confirmed it acted on); then one row per feedback type on it, at its first
        arrival (never before the send). Rows of one second: sends first, by exact time then decision id.

        Every row of the window: what tests, replays and tools read, and :meth:`history` for a customer with
        few contacts."""
        args = (customer_key(customer_id), float(since), control_action)
        query = self._sql["contacts_delivered" if delivered_only else "contacts"]

        def op(cur: Any) -> list[Any]:
            cur.execute(query, (*args, args[0], *args))
            return list(cur.fetchall())

        out = []
        for sent_at, action, channel, kind, fb_at, decision_id in self._run(op):
            if kind == "sent":
                out.append((int(sent_at), action, channel, "sent", float(sent_at), decision_id))
            else:
                at = int(max(sent_at, fb_at))
                out.append((at, action, channel, CONTACT_OUTCOME[kind], float(sent_at), decision_id))
        out.sort(key=lambda r: (r[0], r[3] != "sent", r[4], r[5]))
        return [r[:4] for r in out]

    def history(
        self, customer_id: str | int, builder: HistoryBuilder, now: float, *, since: float, delivered_only: bool = False
    ) -> History | None:
        """The ``history`` map of the customer at ``now`` from contacts since ``since`` (None when there are
        none): what ``builder.build(self.contacts(...), now)`` gives, read in one bounded statement from the
        summaries the log keeps. A catalog whose control is not ``no_action`` reads the full rows instead."""
        if builder.control != CONTROL:
            rows = self.contacts(customer_id, since, control_action=builder.control, delivered_only=delivered_only)
            return builder.build(rows, int(now)) if rows else None
        # Most customers have a short history: its rows are cheaper to read than the summaries' statement.
        sends = self._sends(customer_id, since, FEW_SENDS + 1) if self.short_histories_by_row else FEW_SENDS + 1
        if sends == 0:
            return None  # no contact in the window
        if sends <= FEW_SENDS:
            built = builder.build(self.contacts(customer_id, since, delivered_only=delivered_only), int(now))
            return built if built["days_since_action"] else None
        bounds = Bounds.at(int(now), since)
        params = history_params(customer_key(customer_id), bounds, delivered_only, builder.streak_contacts)
        query = self._sql["history"]

        def op(cur: Any) -> list[Any]:
            cur.execute(query, params)
            return list(cur.fetchall())

        summary = ContactSummary(bounds)
        mode = "delivered" if delivered_only else "sent"
        recent, latest, counts = summary.recent, summary.latest, summary.counts
        for tag, name, action, kind, decision_id, a, b, c, d in self._run(op):
            if tag == "S":
                recent.append((int(a), action, name, "sent" if kind == mode else kind, b, decision_id))
            elif tag == "A":
                if a is not None and a >= since:
                    latest[name] = a
            else:  # C: per window, its days up to today's start, plus today up to now (history.py)
                counts[name] = (int(a + d), int(b + d), int(c + d))
        return builder.summarize(summary)

    def _sends(self, customer_id: str | int, since: float, at_most: int) -> int:
        """The customer's sends since ``since`` (the control action aside), counted up to ``at_most``."""
        args = (customer_key(customer_id), float(since), CONTROL, int(at_most))

        def op(cur: Any) -> int:
            cur.execute(self._sql["sends_probe"], args)
            return int(cur.fetchone()[0])

        return self._run(op)
