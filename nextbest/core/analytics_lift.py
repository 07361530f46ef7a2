"""Incremental lift of the policy over the global control group: streamed moments and Welch's difference of means.

:class:`Moments` accumulates a metric per decision (Welford, so a window of any length is read once in constant
memory); :func:`lift` compares the treated and control groups' moments as a :class:`Lift`, treated minus control
mean with a normal interval and the relative lift (delta method). ``safe_ratio`` and ``plain`` are the small numeric
helpers every analytics figure is rendered with (NaN for an empty denominator; JSON-safe values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nextbest.core.ope import z_value


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
        return {k: plain(getattr(self, k)) for k in self.__dataclass_fields__}


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


def safe_ratio(a: float, b: float) -> float:
    """``a / b``, NaN when ``b`` is 0."""
    return a / b if b else math.nan


def plain(x: Any) -> Any:
    """JSON-safe: NaN and infinities become None, floats are rounded for display."""
    if isinstance(x, float):
        return round(x, 6) if math.isfinite(x) else None
    return x
