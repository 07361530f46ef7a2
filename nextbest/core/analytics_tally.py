"""The decision log as analytics reads it (:class:`DecisionFacts`), and the accumulators a report keeps per cell.

:class:`Tally` counts served decisions and their feedback (impressions, clicks, conversions, revenue);
:class:`Arms` streams revenue and conversion per decision into treated and control moments, from which the
lifts are estimated. A report keeps one of each overall, per (action, channel) :class:`Cell` and per UTC
:class:`Day`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nextbest.core.analytics_lift import Lift, Moments, lift, plain, safe_ratio


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
            "ctr": plain(safe_ratio(self.clicks, self.impressions)),
            "conversion_rate": plain(safe_ratio(self.conversions, self.decisions)),
            "aov": plain(safe_ratio(self.revenue, self.orders)),
            "revenue_per_decision": plain(safe_ratio(self.revenue, self.decisions)),
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
