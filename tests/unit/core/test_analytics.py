"""Journey analytics on synthetic logs whose true incremental effect is known.

Customers are split into the control group at random (as the hash does), conversions and order values are
drawn from known distributions, so the true lift of revenue and conversion per decision is exact; the reported
intervals must cover it about as often as their level says.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nextbest.core.analytics import DecisionFacts, Moments, compute, lift

T0 = 1_795_000_000.0  # a UTC midnight is not needed: days are bucketed by UTC date
DAY = 86_400.0
P_CONTROL, P_TREATED, AOV = 0.05, 0.08, 50.0  # conversion without and with the policy, mean order value
TRUE_REVENUE_LIFT = (P_TREATED - P_CONTROL) * AOV  # 1.5 per decision
TRUE_CONVERSION_LIFT = P_TREATED - P_CONTROL


def world(rng: np.random.Generator, n: int, control_share: float = 0.2, days: int = 3) -> list[DecisionFacts]:
    """``n`` decisions over ``days`` days: the policy serves email_promo; the control group gets nothing."""
    control = rng.random(n) < control_share
    converted = rng.random(n) < np.where(control, P_CONTROL, P_TREATED)
    value = rng.gamma(4.0, AOV / 4.0, n)  # mean AOV, skewed like order values
    at = T0 + rng.random(n) * days * DAY
    impression = ~control & (rng.random(n) < 0.9)
    click = impression & (rng.random(n) < 0.2)
    return [
        DecisionFacts(
            created_at=t,
            action="no_action" if c else "email_promo",
            greedy_action="email_promo",
            control=c,
            channel=None if c else "email",
            greedy_channel="email",
            impression=imp,
            click=clk,
            converted=conv,
            orders=int(conv),
            revenue=v if conv else 0.0,
        )
        for t, c, imp, clk, conv, v in zip(
            at.tolist(),
            control.tolist(),
            impression.tolist(),
            click.tolist(),
            converted.tolist(),
            value.tolist(),
            strict=True,
        )
    ]


def test_moments_match_numpy() -> None:
    x = np.random.default_rng(0).normal(1e6, 3.0, 5_000)  # a large mean: the naive sum of squares would cancel
    m = Moments()
    for v in x:
        m.add(float(v))
    assert m.n == x.size and m.mean == pytest.approx(x.mean()) and m.variance == pytest.approx(x.var(ddof=1))


def test_lift_interval_covers_the_true_effect_at_its_level() -> None:
    rng = np.random.default_rng(7)
    reps, hits_rev, hits_conv = 200, 0, 0
    for _ in range(reps):
        report = compute(world(rng, 1_500), since=T0, until=T0 + 3 * DAY)
        hits_rev += report.lifts["revenue"].covers(TRUE_REVENUE_LIFT)
        hits_conv += report.lifts["conversion"].covers(TRUE_CONVERSION_LIFT)
    # 95% intervals: binomial(200, 0.95) lies in [0.90, 0.99] with probability > 0.99.
    assert 0.90 <= hits_rev / reps <= 0.99
    assert 0.90 <= hits_conv / reps <= 0.99


def test_a_large_log_estimates_the_lift_tightly() -> None:
    report = compute(world(np.random.default_rng(1), 60_000), since=T0, until=T0 + 3 * DAY)
    rev = report.lifts["revenue"]
    assert rev.covers(TRUE_REVENUE_LIFT) and rev.ci_high - rev.ci_low < 1.0
    assert rev.relative == pytest.approx(P_TREATED / P_CONTROL - 1, abs=0.15)
    assert rev.relative_low < P_TREATED / P_CONTROL - 1 < rev.relative_high
    d = report.as_dict()
    assert d["incremental_revenue"]["value"] == pytest.approx(rev.value * report.arms.revenue[0].n, rel=1e-6)
    served = d["totals"]["served"]
    assert served["ctr"] == pytest.approx(0.2, abs=0.01)
    assert served["aov"] == pytest.approx(AOV, rel=0.05)
    assert served["conversion_rate"] == pytest.approx(P_TREATED, abs=0.005)


def test_per_action_lift_is_intent_to_treat_and_unbiased_where_the_served_comparison_is_not() -> None:
    """The policy sends a discount to price-sensitive customers (who buy less anyway) and help content to the
    rest. Comparing a served action with the whole control group mixes in who gets it; comparing with the
    control customers the policy *would* have given it to does not."""
    rng = np.random.default_rng(3)
    n = 80_000
    sensitive = rng.random(n) < 0.5
    control = rng.random(n) < 0.25
    base = np.where(sensitive, 0.02, 0.10)
    effect = np.where(sensitive, 0.06, 0.01)  # true uplift of the action the policy chooses
    converted = rng.random(n) < base + np.where(control, 0.0, effect)
    greedy = np.where(sensitive, "discount_10", "help_content")
    rows = [
        DecisionFacts(
            created_at=T0 + i,
            action="no_action" if c else g,
            greedy_action=g,
            control=c,
            channel=None if c else "email",
            greedy_channel="email",
            converted=conv,
            orders=int(conv),
            revenue=40.0 * conv,
        )
        for i, (c, g, conv) in enumerate(zip(control.tolist(), greedy.tolist(), converted.tolist(), strict=True))
    ]
    report = compute(rows, since=T0, until=T0 + n)
    by_action = {r["action"]: r for r in report.rows()}
    for action, true in (("discount_10", 0.06 * 40), ("help_content", 0.01 * 40)):
        row = by_action[action]
        assert row["lift"]["revenue"]["ci_low"] <= true <= row["lift"]["revenue"]["ci_high"], (action, row["lift"])
        naive = row["revenue_per_decision"] - report.control.revenue / report.control.decisions
        assert not math.isclose(naive, true, abs_tol=0.5)  # the served-vs-all-control comparison is biased


def test_no_control_rows_means_no_lift_but_every_other_figure() -> None:
    rows = [r for r in world(np.random.default_rng(2), 2_000) if not r.control]
    report = compute(rows, since=T0, until=T0 + 3 * DAY)
    rev = report.lifts["revenue"]
    assert not rev.available and rev.note == "no control decisions" and math.isnan(rev.value)
    d = json.loads(json.dumps(report.as_dict(), allow_nan=False))  # strict JSON: NaN became null
    assert d["lift"]["revenue"]["value"] is None and d["lift"]["revenue"]["treated"] is not None
    assert d["incremental_revenue"]["value"] is None
    assert d["totals"]["decisions"] == len(rows) and d["totals"]["served"]["ctr"] is not None
    one = compute([*rows, *[r for r in world(np.random.default_rng(4), 50) if r.control][:1]], since=T0,
                  until=T0 + 3 * DAY)  # fmt: skip
    assert one.lifts["revenue"].note == "fewer than 2 control decisions"


def test_zero_decisions_gives_an_empty_but_complete_report() -> None:
    report = compute([], since=T0, until=T0 + 2 * DAY)
    d = json.loads(json.dumps(report.as_dict(), allow_nan=False))
    assert d["totals"]["decisions"] == 0 and d["totals"]["degraded_rate"] is None
    assert d["actions"] == [] and d["rules"] == []
    assert len(d["daily"]) in (2, 3) and all(day["decisions"] == 0 for day in d["daily"])
    assert d["lift"]["revenue"]["value"] is None and d["lift"]["revenue"]["note"] == "no decisions"


def test_degraded_decisions_are_counted_but_left_out_of_the_lift() -> None:
    rows = world(np.random.default_rng(5), 4_000)
    degraded = [
        DecisionFacts(created_at=T0 + i, action="no_action", greedy_action="no_action", control=False, degraded=True)
        for i in range(1_000)
    ]
    with_degraded = compute([*rows, *degraded], since=T0, until=T0 + 3 * DAY)
    without = compute(rows, since=T0, until=T0 + 3 * DAY)
    assert with_degraded.degraded_rate == pytest.approx(1_000 / 5_000)
    assert with_degraded.lifts["revenue"].value == pytest.approx(without.lifts["revenue"].value)
    assert sum(day["degraded"] for day in with_degraded.daily()) == 1_000


def test_rule_hit_rates_count_decisions_not_candidates() -> None:
    rows = [
        DecisionFacts(T0, "help_content", "help_content", False, suppressed_by=("no_promo_open_ticket",) * 3),
        DecisionFacts(T0 + 1, "no_action", "no_action", False, suppressed_by=("consent_email", "no_promo_open_ticket")),
        DecisionFacts(T0 + 2, "email_promo", "email_promo", False, shadow_hits=("trial_rule",)),
        DecisionFacts(T0 + 3, "email_promo", "email_promo", False),
    ]
    rules = {r["rule_id"]: r for r in compute(rows, since=T0, until=T0 + DAY).rules()}
    assert rules["no_promo_open_ticket"]["suppressed"] == 2 and rules["no_promo_open_ticket"]["suppressed_rate"] == 0.5
    assert rules["consent_email"]["suppressed_rate"] == 0.25
    assert rules["trial_rule"]["shadow"] == 1 and rules["trial_rule"]["suppressed"] == 0


def test_window_and_daily_buckets() -> None:
    midnight = 1_795_046_400.0  # 2026-11-19 00:00 UTC
    rows = [DecisionFacts(midnight + h * 3600, "email_promo", "email_promo", False, converted=True, orders=2,
                          revenue=30.0) for h in (-1, 1, 2, 25, 49)]  # fmt: skip
    report = compute(rows, since=midnight, until=midnight + 2 * DAY)
    assert report.decisions == 3  # the rows before the window and at/after its end are left out
    days = report.daily()
    assert [d["day"] for d in days] == ["2026-11-19", "2026-11-20"]
    assert [d["decisions"] for d in days] == [2, 1]
    assert days[0]["served"]["aov"] == 15.0 and days[0]["served"]["revenue_per_decision"] == 30.0


def test_lift_without_spread_and_bad_arguments() -> None:
    a, b = Moments(), Moments()
    for _ in range(3):
        a.add(2.0)
        b.add(1.0)
    flat = lift("revenue", a, b)
    assert flat.value == 1.0 and flat.ci_low == flat.ci_high == 1.0 and flat.note and "width 0" in flat.note
    with pytest.raises(ValueError, match="window"):
        compute([], since=T0, until=T0)
    with pytest.raises(ValueError, match="level"):
        compute([], since=T0, until=T0 + 1, level=1.5)
