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
same map from summaries the log keeps (``serving/log_history.py``), at a cost that does not grow with the
customer's history. ``training_rows`` is what retraining reads.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from nextbest.core.contact import Bounds, ContactSummary, History, HistoryBuilder
from nextbest.errors import ConfigError, DataError, NotFoundError
from nextbest.serving.log_history import CONTROL, history_params, history_statement, names
from nextbest.serving.log_records import (
    CONTACT_OUTCOME,
    FEEDBACK_TYPES,
    OUTCOME_ORDER,
    DecisionOutcome,
    DecisionRecord,
    FeedbackRecord,
    FeedbackType,
    one_line,
    redact,
)
from nextbest.serving.log_sql import (
    ACTIVITY_COLUMNS,
    DECISION_COLUMNS,
    customer_key,
    decode_decision,
    dumps,
    encode_decision,
    flatten,
    loads,
    rule_ids,
    statements,
)

T = TypeVar("T")
#: The records and helpers of serving/log_records.py, importable from here as before.
__all__ = [
    "CONTACT_OUTCOME",
    "FEEDBACK_TYPES",
    "OUTCOME_ORDER",
    "DecisionLog",
    "DecisionOutcome",
    "DecisionRecord",
    "FeedbackRecord",
    "FeedbackType",
    "one_line",
    "open_decision_log",
    "redact",
]  # fmt: skip
DEFAULT_PREFIX = "nextbest_"
#: A customer with at most this many sends in the window has their history built from their rows (at most
#: these sends and a row per kind of feedback on each); beyond, from the summaries. Bounded either way.
FEW_SENDS = 24
_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


class DecisionLog(ABC):
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
        self.history_names = names(table_prefix)  # the contact-history summaries (serving/log_history.py)
        self._sql["history"] = history_statement(self.history_names, self.placeholder)  # named parameters

    # Backend hooks -------------------------------------------------------------------------------------------
    @abstractmethod
    def _run(self, op: Callable[[Any], T], write: bool = False) -> T:
        """Run ``op(cursor)`` on this thread's connection; when it returns, any write is committed."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the backend answers (readiness); never raises."""

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
            else:  # C: per window, its days up to today's start, plus today up to now (serving/log_history.py)
                counts[name] = (int(a + d), int(b + d), int(c + d))
        return builder.summarize(summary)

    def _sends(self, customer_id: str | int, since: float, at_most: int) -> int:
        """The customer's sends since ``since`` (the control action aside), counted up to ``at_most``."""
        args = (customer_key(customer_id), float(since), CONTROL, int(at_most))

        def op(cur: Any) -> int:
            cur.execute(self._sql["sends_probe"], args)
            return int(cur.fetchone()[0])

        return self._run(op)

    def training_rows(self, since: float | None = None, until: float | None = None) -> list[dict[str, Any]]:
        """One row per decision in ``[since, until)``: metadata, logged probability (also as ``propensity``,
        the name ``nextbest train --data`` reads), outcome aggregated over its feedback, and the features as
        served, flattened (nested keys joined by ``.``; a name clashing with a column gets ``feature.``)."""
        bounds = (-math.inf if since is None else float(since), math.inf if until is None else float(until))

        def op(cur: Any) -> list[Any]:
            cur.execute(self._sql["training"], bounds)
            return list(cur.fetchall())

        rows = []
        for r in self._run(op):
            converted, clicked, impressed, dismissed = (int(v) for v in r[16:20])
            flags = {"conversion": converted, "click": clicked, "impression": impressed, "dismissed": dismissed}
            row: dict[str, Any] = {
                "decision_id": r[0], "request_id": r[1], "customer_id": customer_key(r[2]), "created_at": float(r[3]),
                "event_timestamp": datetime.fromtimestamp(float(r[3]), UTC), "channel": r[4], "action": r[5],
                "action_channel": r[6], "probability": float(r[7]), "propensity": float(r[7]),
                "explored": bool(r[8]), "control": bool(r[9]), "degraded": bool(r[10]), "model_version": r[11],
                "ruleset_version": r[12], "catalog_version": r[13], "feature_service": r[14],
                "converted": converted, "clicked": clicked, "impressed": impressed, "dismissed": dismissed,
                "revenue": float(r[20]), "feedback_count": int(r[21]),
                "outcome": next((o for o in OUTCOME_ORDER if flags.get(o, 1)), "sent"),
            }  # fmt: skip
            try:
                features = loads(r[15])
            except ValueError:  # not JSON (a foreign writer): retraining skips the row and counts it
                features = None
            if isinstance(features, dict):
                flatten(features, "", row, set(row))
            else:
                row["_unreadable"] = True
            rows.append(row)
        return rows

    def decisions(
        self, since: float, until: float | None = None, *, limit: int | None = None, page_size: int = 1000
    ) -> Iterator[tuple[DecisionRecord, DecisionOutcome]]:
        """Decisions created in ``[since, until)``, newest first, with scores, features and rule hits as logged
        and their feedback aggregated (rule simulation replays them). Read in pages: a long window is never
        held in memory or in one transaction."""
        cursor: tuple[float, str] = (math.inf if until is None else float(until), "")
        left = math.inf if limit is None else int(limit)
        n = len(DECISION_COLUMNS)
        while left > 0:
            size = int(min(page_size, left))

            def op(cur: Any, after: tuple[float, str] = cursor, size: int = size) -> list[Any]:
                cur.execute(self._sql["window"], (float(since), after[0], after[0], after[1], size))
                return list(cur.fetchall())

            page = self._run(op)
            records = [self._decode(row[:n]) for row in page]
            for rec, row in zip(records, page, strict=True):
                yield rec, DecisionOutcome(int(row[n + 1]), float(row[n]), int(row[n + 2]))
            if len(page) < size:
                return
            left -= len(page)
            cursor = (records[-1].created_at, records[-1].decision_id)

    def activity(self, since: float, until: float | None = None, *, page_size: int = 5000) -> Iterator[dict[str, Any]]:
        """Decisions created in ``[since, until)``, oldest first, as ``ACTIVITY_COLUMNS`` dicts (no features or
        scores; rule hits as the ids of the rules that suppressed actions, ``suppressed_by``, and of the shadow
        hits, ``shadow_hits``; feedback aggregated: a 0/1 flag per type, conversion events as ``orders`` and
        their revenue).
        Read in pages, so analytics over a long window never holds it in memory or in one transaction."""
        cursor: tuple[float, str] = (float(since), "")
        end = math.inf if until is None else float(until)
        while True:

            def op(cur: Any, after: tuple[float, str] = cursor) -> list[Any]:
                cur.execute(self._sql["activity_window"], (float(since), end, after[0], after[0], after[1], page_size))
                return list(cur.fetchall())

            page = [self._activity(row) for row in self._run(op)]
            yield from page
            if len(page) < page_size:
                return
            cursor = (page[-1]["created_at"], page[-1]["decision_id"])

    def customer_activity(self, customer_id: str | int, limit: int = 20) -> list[dict[str, Any]]:
        """The customer's latest ``limit`` decisions, newest first, in the format of :meth:`activity`."""

        def op(cur: Any) -> list[Any]:
            cur.execute(self._sql["activity_customer"], (customer_key(customer_id), int(limit)))
            return list(cur.fetchall())

        return [self._activity(row) for row in self._run(op)]

    @staticmethod
    def _activity(row: Any) -> dict[str, Any]:
        out = dict(zip(ACTIVITY_COLUMNS, row, strict=True))
        out["customer_id"], out["created_at"] = customer_key(out["customer_id"]), float(out["created_at"])
        out["probability"], out["revenue"] = float(out["probability"]), float(out["revenue"])
        for name in ("explored", "control", "degraded", "impression", "click", "conversion", "dismissed"):
            out[name] = bool(out[name])
        out["orders"] = int(out["orders"])
        ids, hits = out.pop("rule_ids"), out.pop("rule_hits")
        out["suppressed_by"], out["shadow_hits"] = loads(ids) if ids is not None else rule_ids(loads(hits))
        return out

    def counts(self) -> dict[str, int]:
        def op(cur: Any) -> Any:
            cur.execute(self._sql["counts"])
            return cur.fetchone()

        decisions, feedback = self._run(op)
        return {"decisions": int(decisions), "feedback": int(feedback)}


# Factory ----------------------------------------------------------------------------------------------------
def open_decision_log(url: str, *, table_prefix: str | None = None) -> DecisionLog:
    """Open (and create the schema of) the log at ``url``: ``sqlite:////abs/path.db`` or
    ``postgresql://user@host:port/db``. ``table_prefix`` (or ``?table_prefix=`` in the URL) isolates tables.
    SQLite also takes ``?synchronous=FULL`` to survive power loss, not only a crash of the process."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = table_prefix or query.pop("table_prefix", None) or DEFAULT_PREFIX
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        from nextbest.serving.log_sqlite import SqliteDecisionLog

        path = url.split("?", 1)[0][len("sqlite:///") :]
        if not url.lower().startswith("sqlite:///") or not path.startswith("/"):
            raise ConfigError(f"decision_log_url {url!r}: use sqlite:////absolute/path/decisions.db")
        synchronous = query.pop("synchronous", "NORMAL").upper()
        if query or synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f"decision_log_url {url!r}: SQLite takes only table_prefix and synchronous=NORMAL|FULL")
        return SqliteDecisionLog(path, table_prefix=prefix, synchronous=synchronous)
    if scheme in ("postgresql", "postgres"):
        from nextbest.serving.log_postgres import PostgresDecisionLog

        query.setdefault("connect_timeout", "5")
        # quote, not quote_plus: libpq reads "%20" as a space, "+" literally (options=-c statement_timeout=...)
        conninfo = urlunsplit(
            (parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment)
        )
        return PostgresDecisionLog(conninfo, redact(url), table_prefix=prefix)
    raise ConfigError(
        f"decision_log_url {redact(url)!r}: unknown scheme {parts.scheme!r}; use sqlite:///... or postgresql://..."
    )
