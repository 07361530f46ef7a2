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
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nextbest.core.ope import z_value

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """One logged decision and its feedback, as analytics needs it.

    ``channel`` is the delivery channel of the served action, ``greedy_channel`` that of the action arbitration
    chose (None when the action is not a contact, e.g. the control). ``orders`` counts conversion events and
    ``revenue`` sums their revenue; the flags say whether any feedback of that kind arrived."""

    created_at: float
    action: str
    greedy_action: str
    control: bool
    channel: str | None = None
    greedy_channel: str | None = None
    degraded: bool = False
    explored: bool = False
    impression: bool = False
    click: bool = False
    converted: bool = False
    orders: int = 0
    revenue: float = 0.0
    suppressed_by: tuple[str, ...] = ()  # ids of enforcing rules that suppressed some candidate
    shadow_hits: tuple[str, ...] = ()  # ids of shadow rules that would have


@dataclass
class Moments:
    """Count, mean and variance of a stream (Welford: stable for long windows)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else math.nan


@dataclass(frozen=True)
class Lift:
    """Treated minus control mean of one metric per decision, with a ``level`` normal interval; ``relative`` is
    the lift as a share of the control mean (delta-method interval). Values are NaN when not estimable, and
    ``note`` says why."""

    metric: str
    treated: float
    control: float
    value: float
    se: float
    ci_low: float
    ci_high: float
    relative: float
    relative_low: float
    relative_high: float
    n_treated: int
    n_control: int
    level: float
    note: str | None = None

    @property
    def available(self) -> bool:
        return math.isfinite(self.value) and math.isfinite(self.se)

    def covers(self, truth: float) -> bool:
        return self.available and self.ci_low <= truth <= self.ci_high

    def as_dict(self) -> dict[str, Any]:
        return {k: _plain(getattr(self, k)) for k in self.__dataclass_fields__}


def lift(metric: str, treated: Moments, control: Moments, level: float = 0.95) -> Lift:
    """Welch's difference of means with a normal interval. At least two decisions per group are needed to
    estimate a spread; otherwise the lift is reported as not available rather than falsely precise."""
    nan = math.nan
    if treated.n < 2 or control.n < 2:
        who = "control" if control.n < 2 else "treated"
        note = f"no {who} decisions" if min(treated.n, control.n) == 0 else f"fewer than 2 {who} decisions"
        note = "no decisions" if treated.n == control.n == 0 else note
        t = treated.mean if treated.n else nan
        c = control.mean if control.n else nan
        return Lift(metric, t, c, nan, nan, nan, nan, nan, nan, nan, treated.n, control.n, level, note)
    z = z_value(level)
    vt, vc = treated.variance / treated.n, control.variance / control.n
    diff = treated.mean - control.mean
    se = math.sqrt(vt + vc)
    rel = rel_lo = rel_hi = nan
    if control.mean > 0:
        ratio = treated.mean / control.mean
        rel_se = math.sqrt(vt / control.mean**2 + treated.mean**2 * vc / control.mean**4)
        rel, rel_lo, rel_hi = ratio - 1, ratio - 1 - z * rel_se, ratio - 1 + z * rel_se
    flat = "no variation in either group: the interval has width 0" if se == 0 else None
    return Lift(metric, treated.mean, control.mean, diff, se, diff - z * se, diff + z * se, rel, rel_lo, rel_hi,
                treated.n, control.n, level, flat)  # fmt: skip


@dataclass
class Tally:
    """Served-decision counters of one cell (an action and channel, a day, or everything)."""

    decisions: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0  # decisions with at least one conversion
    orders: int = 0
    revenue: float = 0.0

    def add(self, f: DecisionFacts) -> None:
        self.decisions += 1
        self.impressions += f.impression
        self.clicks += f.click
        self.conversions += f.converted
        self.orders += f.orders
        self.revenue += f.revenue

    def as_dict(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "conversions": self.conversions,
            "orders": self.orders,
            "revenue": round(self.revenue, 2),
            "ctr": _plain(_ratio(self.clicks, self.impressions)),
            "conversion_rate": _plain(_ratio(self.conversions, self.decisions)),
            "aov": _plain(_ratio(self.revenue, self.orders)),
            "revenue_per_decision": _plain(_ratio(self.revenue, self.decisions)),
        }


@dataclass
class Arms:
    """Revenue and conversion per decision, treated and control (degraded decisions excluded)."""

    revenue: tuple[Moments, Moments] = field(default_factory=lambda: (Moments(), Moments()))
    conversion: tuple[Moments, Moments] = field(default_factory=lambda: (Moments(), Moments()))

    def add(self, f: DecisionFacts) -> None:
        arm = 1 if f.control else 0
        self.revenue[arm].add(f.revenue)
        self.conversion[arm].add(1.0 if f.converted else 0.0)

    def lifts(self, level: float) -> dict[str, Lift]:
        return {
            "revenue": lift("revenue", *self.revenue, level=level),
            "conversion": lift("conversion", *self.conversion, level=level),
        }


@dataclass
class Cell:
    served: Tally = field(default_factory=Tally)  # treated decisions that served this action on this channel
    arms: Arms = field(default_factory=Arms)  # decisions where the policy chose it (treated and control)


@dataclass
class Day:
    served: Tally = field(default_factory=Tally)
    control: Tally = field(default_factory=Tally)
    degraded: int = 0
    arms: Arms = field(default_factory=Arms)


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
        return _ratio(self.degraded, self.decisions)

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
                 "suppressed_rate": _plain(_ratio(self.suppressions.get(r, 0), n)),
                 "shadow_rate": _plain(_ratio(self.shadow.get(r, 0), n))} for r in ids]  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        lifts = self.lifts
        revenue = lifts["revenue"]
        incremental = {k: _plain(getattr(revenue, k) * self.arms.revenue[0].n) for k in ("value", "ci_low", "ci_high")}
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
                "control_share": _plain(_ratio(self.control.decisions, self.decisions)),
                "degraded": self.degraded,
                "degraded_rate": _plain(self.degraded_rate),
                "explored": self.explored,
                "explored_rate": _plain(_ratio(self.explored, self.decisions)),
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


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def _plain(x: Any) -> Any:
    """JSON-safe: NaN and infinities become None, floats are rounded for display."""
    if isinstance(x, float):
        return round(x, 6) if math.isfinite(x) else None
    return x


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def iso_seconds(ts: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC time to the second (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
