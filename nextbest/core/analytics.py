"""Journey analytics from the decision log: what was served, what happened, and what it *added* over doing nothing.

Incremental lift is measured against the global control group, whose members are drawn by a hash of the customer
id (:mod:`nextbest.core.exploration`) and always get the control action. Membership is random and independent of
the features, so the control group's revenue (or conversion) per decision estimates what the treated customers
would have earned without the policy; the difference of the two means is the policy's incremental value per
decision, with a normal (Welch) interval from the two groups' variances.

Per action, the comparison is *intent-to-treat*: every decision, control included, logs the action arbitration
chose (``greedy_action``), so "customers the policy chose A for and got it" are compared with "control customers
the policy would have chosen A for". Comparing the served action with the whole control group would mix in who
gets which action (selection), and is not a lift.

Degraded decisions (features or model unavailable) are counted and reported but left out of the lift: a degraded
fallback is never flagged as control, so keeping them would put those customers on the treated side only.

Everything is streamed through accumulators (Welford moments), so a window of any length is read once, in
pages, in constant memory.

This module holds the report of a window (:class:`AnalyticsReport`, built by :func:`compute`) and its rendering;
the per-decision input and the accumulators are in :mod:`nextbest.core.analytics_tally`, the moments and the lift
estimate in :mod:`nextbest.core.analytics_lift` (their public names are re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nextbest.core.analytics_lift import Lift, Moments, lift, plain, safe_ratio
from nextbest.core.analytics_tally import Arms, Cell, Day, DecisionFacts, Tally
from nextbest.core.ope import z_value

__all__ = [
    "DAY",
    "AnalyticsReport",
    "Arms",
    "Cell",
    "Day",
    "DecisionFacts",
    "Lift",
    "Moments",
    "Tally",
    "compute",
    "iso_seconds",
    "lift",
]

DAY = 86_400.0


@dataclass
class AnalyticsReport:
    since: float
    until: float
    level: float
    decisions: int = 0
    degraded: int = 0
    explored: int = 0
    served: Tally = field(default_factory=Tally)  # treated (not control), degraded included
    control: Tally = field(default_factory=Tally)
    arms: Arms = field(default_factory=Arms)
    cells: dict[tuple[str, str | None], Cell] = field(default_factory=dict)
    days: dict[int, Day] = field(default_factory=dict)  # UTC day number (Unix time // 86400) -> its figures
    suppressions: dict[str, int] = field(default_factory=dict)  # rule id -> decisions it suppressed something on
    shadow: dict[str, int] = field(default_factory=dict)
    currency: str = "EUR"
    skipped: int = 0  # rows that cannot be counted (a non-finite or negative revenue written by an older version)

    def add(self, f: DecisionFacts) -> None:
        self.decisions += 1
        self.degraded += f.degraded
        self.explored += f.explored
        index = int(f.created_at // DAY)
        day = self.days.get(index)
        if day is None:
            day = self.days[index] = Day()
        (self.control if f.control else self.served).add(f)
        (day.control if f.control else day.served).add(f)
        if not f.control:
            self._cell(f.action, f.channel).served.add(f)
        if f.degraded:
            day.degraded += 1
        else:
            self.arms.add(f)
            day.arms.add(f)
            self._cell(f.greedy_action, f.greedy_channel).arms.add(f)
        for rule_id in set(f.suppressed_by):
            self.suppressions[rule_id] = self.suppressions.get(rule_id, 0) + 1
        for rule_id in set(f.shadow_hits):
            self.shadow[rule_id] = self.shadow.get(rule_id, 0) + 1

    def _cell(self, action: str, channel: str | None) -> Cell:
        found = self.cells.get((action, channel))
        if found is None:
            found = self.cells[(action, channel)] = Cell()
        return found

    @property
    def lifts(self) -> dict[str, Lift]:
        return self.arms.lifts(self.level)

    @property
    def degraded_rate(self) -> float:
        return safe_ratio(self.degraded, self.decisions)

    def rows(self) -> list[dict[str, Any]]:
        """One row per (action, channel): served KPIs and the intent-to-treat lift; most decisions first."""
        out = []
        for (action, channel), cell in self.cells.items():
            lifts = cell.arms.lifts(self.level)
            out.append({"action": action, "channel": channel, **cell.served.as_dict(),
                        "policy_decisions": cell.arms.revenue[0].n, "control_decisions": cell.arms.revenue[1].n,
                        "lift": {k: v.as_dict() for k, v in lifts.items()}})  # fmt: skip
        return sorted(out, key=lambda r: (-r["decisions"], -r["policy_decisions"], r["action"], r["channel"] or ""))

    def daily(self) -> list[dict[str, Any]]:
        """Every UTC day of the window, in order (days without decisions included, with zeros)."""
        first, last = math.floor(self.since / DAY), math.ceil(self.until / DAY) - 1  # ``until`` is exclusive
        out = []
        for index in range(first, last + 1):
            key = _day(index * DAY)
            d = self.days.get(index) or Day()
            lifts = d.arms.lifts(self.level)
            out.append({"day": key, "served": d.served.as_dict(), "control": d.control.as_dict(),
                        "degraded": d.degraded, "decisions": d.served.decisions + d.control.decisions,
                        "lift": {k: v.as_dict() for k, v in lifts.items()}})  # fmt: skip
        return out

    def rules(self) -> list[dict[str, Any]]:
        ids = sorted(set(self.suppressions) | set(self.shadow), key=lambda r: (-self.suppressions.get(r, 0), r))
        n = self.decisions
        return [{"rule_id": r, "suppressed": self.suppressions.get(r, 0), "shadow": self.shadow.get(r, 0),
                 "suppressed_rate": plain(safe_ratio(self.suppressions.get(r, 0), n)),
                 "shadow_rate": plain(safe_ratio(self.shadow.get(r, 0), n))} for r in ids]  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        lifts = self.lifts
        revenue = lifts["revenue"]
        incremental = {k: plain(getattr(revenue, k) * self.arms.revenue[0].n) for k in ("value", "ci_low", "ci_high")}
        return {
            "window": {
                "since": iso_seconds(self.since),
                "until": iso_seconds(self.until),
                "days": (self.until - self.since) / DAY,
            },
            "level": self.level,
            "currency": self.currency,
            "totals": {
                "decisions": self.decisions,
                "treated": self.served.decisions,
                "control": self.control.decisions,
                "control_share": plain(safe_ratio(self.control.decisions, self.decisions)),
                "degraded": self.degraded,
                "degraded_rate": plain(self.degraded_rate),
                "explored": self.explored,
                "explored_rate": plain(safe_ratio(self.explored, self.decisions)),
                "skipped_rows": self.skipped,
                "served": self.served.as_dict(),
                "control_group": self.control.as_dict(),
            },
            "lift": {k: v.as_dict() for k, v in lifts.items()},
            "incremental_revenue": incremental,
            "actions": self.rows(),
            "daily": self.daily(),
            "rules": self.rules(),
        }


def compute(
    facts: Iterable[DecisionFacts], *, since: float, until: float, level: float = 0.95, currency: str = "EUR"
) -> AnalyticsReport:
    """Stream ``facts`` (any order) into a report of the window ``[since, until)``; rows outside it are ignored."""
    if until <= since:
        raise ValueError(f"the window must end after it starts (since={since}, until={until})")
    z_value(level)  # validates the level
    report = AnalyticsReport(since=float(since), until=float(until), level=level, currency=currency)
    for f in facts:
        if since <= f.created_at < until:
            if not (math.isfinite(f.revenue) and f.revenue >= 0):
                report.skipped += 1
                continue
            report.add(f)
    return report


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def iso_seconds(ts: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC time to the second (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
