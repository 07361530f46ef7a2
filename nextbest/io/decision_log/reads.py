"""What the decision log gives retraining, rule simulation, analytics and the explorer: decisions over a window,
read in pages (a long window is never held in memory or in one transaction), with their feedback aggregated."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from nextbest.io.decision_log.records import OUTCOME_ORDER, DecisionOutcome, DecisionRecord
from nextbest.io.decision_log.sql import ACTIVITY_COLUMNS, DECISION_COLUMNS, customer_key, flatten, loads, rule_ids

T = TypeVar("T")


class WindowReads(ABC):
    """The window reads of :class:`~nextbest.io.decision_log.base.DecisionLog` (its base class)."""

    _sql: dict[str, str]

    @abstractmethod
    def _run(self, op: Callable[[Any], T], write: bool = False) -> T:
        """Run ``op(cursor)`` on this thread's connection; when it returns, any write is committed."""

    @abstractmethod
    def _decode(self, row: Any) -> DecisionRecord: ...

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
