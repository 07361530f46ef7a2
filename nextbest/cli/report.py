"""``nextbest report --since DAYS``: the analytics page's figures in the terminal and as a self-contained HTML file.

Reads the decision log the service writes (``decision_log_url``); computes exactly what ``GET /analytics/data``
returns (the same code), so the terminal, the file and the page always agree.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from nextbest.cli.common import catalog_from, console, settings_from


def _n(x: Any) -> str:
    return "–" if x is None else f"{x:,}"


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _money(x: Any, digits: int = 2) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _signed(x: Any, digits: int = 2, scale: float = 1.0) -> str:
    return "n/a" if x is None else f"{scale * x:+,.{digits}f}"


def _ci(lift: dict[str, Any], digits: int = 2, scale: float = 1.0) -> str:
    if lift["ci_low"] is None:
        return lift.get("note") or "n/a"
    return f"{_signed(lift['ci_low'], digits, scale)} .. {_signed(lift['ci_high'], digits, scale)}"


def headline(d: dict[str, Any]) -> list[str]:
    t, rev, conv, cur = d["totals"], d["lift"]["revenue"], d["lift"]["conversion"], d["currency"]
    level = f"{round(100 * d['level'])}% CI"
    lines = [
        f"{t['decisions']:,} decisions from {d['window']['since']} to {d['window']['until']}: {t['treated']:,} by the "
        f"policy, {t['control']:,} in the global control group ({_pct(t['control_share'])}); "
        f"{_pct(t['degraded_rate'])} degraded, {_pct(t['explored_rate'])} explored.",
    ]
    if rev["value"] is None:
        lines.append(f"Incremental lift over the control group: not available ({rev['note']}).")
    else:
        inc = d["incremental_revenue"]
        lines.append(
            f"Incremental revenue per decision: {_signed(rev['value'])} {cur} ({level} {_ci(rev)}; "
            f"{_pct(rev['relative'])} over control); conversion {_signed(conv['value'], 2, 100)} pp "
            f"({level} {_ci(conv, 2, 100)} pp); incremental revenue {_money(inc['value'], 0)} {cur} "
            f"({level} {_money(inc['ci_low'], 0)} .. {_money(inc['ci_high'], 0)})."
        )
    return lines


def tables(d: dict[str, Any]) -> list[Any]:
    cur, level = d["currency"], f"{round(100 * d['level'])}% CI"
    out: list[Any] = list(headline(d))
    kpis = Table(title="served decisions (policy) and the control group", title_justify="left")
    for col in ("", "decisions", "impressions", "CTR", "conversion", "AOV", "revenue", "revenue/decision"):
        kpis.add_column(col, justify="left" if not col else "right")
    for name, k in (("policy", d["totals"]["served"]), ("control group", d["totals"]["control_group"])):
        kpis.add_row(name, _n(k["decisions"]), _n(k["impressions"]), _pct(k["ctr"]), _pct(k["conversion_rate"]),
                     _money(k["aov"]), _money(k["revenue"], 0), _money(k["revenue_per_decision"]))  # fmt: skip
    out.append(kpis)
    actions = Table(title=f"per action and channel (lift: {cur} per decision, intent-to-treat)", title_justify="left")
    for col in ("action", "channel", "decisions", "impr.", "CTR", "conv.", "AOV", "revenue", "policy/control",
                "lift", level):  # fmt: skip
        actions.add_column(col, justify="left" if col in ("action", "channel") else "right")
    for r in d["actions"]:
        lift = r["lift"]["revenue"]
        actions.add_row(r["action"], r["channel"] or "–", _n(r["decisions"]), _n(r["impressions"]), _pct(r["ctr"]),
                        _pct(r["conversion_rate"]), _money(r["aov"]), _money(r["revenue"], 0),
                        f"{r['policy_decisions']:,}/{r['control_decisions']:,}", _signed(lift["value"]),
                        _ci(lift))  # fmt: skip
    out.append(actions)
    if d["rules"]:
        rules = Table(title="rule hit rates (share of decisions)", title_justify="left")
        for col in ("rule", "suppressed on", "rate", "shadow hits", "shadow rate"):
            rules.add_column(col, justify="left" if col == "rule" else "right")
        for r in d["rules"]:
            rules.add_row(r["rule_id"], _n(r["suppressed"]), _pct(r["suppressed_rate"]), _n(r["shadow"]),
                          _pct(r["shadow_rate"]))  # fmt: skip
        out.append(rules)
    daily = Table(title="per day", title_justify="left")
    for col in ("day", "decisions", "control", "degraded", "CTR", "conversion", "revenue", "lift", level):
        daily.add_column(col, justify="left" if col == "day" else "right")
    for x in d["daily"]:
        lift = x["lift"]["revenue"]
        daily.add_row(x["day"], _n(x["decisions"]), _n(x["control"]["decisions"]), _n(x["degraded"]),
                      _pct(x["served"]["ctr"]), _pct(x["served"]["conversion_rate"]),
                      _money(x["served"]["revenue"] + x["control"]["revenue"], 0), _signed(lift["value"]),
                      _ci(lift))  # fmt: skip
    out.append(daily)
    return out


@click.command()
@click.option(
    "--since",
    "since_days",
    type=click.FloatRange(0, 3660, min_open=True),
    default=7.0,
    show_default=True,
    help="Report on the decisions of the last DAYS days.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write [NEXTBEST_HOME/reports/report-<time>.html]; the figures go beside it as .json.",
)
def report(since_days: float, out: Path | None) -> None:
    """Decisions, CTR, conversion, AOV, revenue and incremental lift over the control group, per action and
    channel, from the decision log: in the terminal and as the analytics page in one HTML file."""
    from nextbest.io.decision_log import open_decision_log
    from nextbest.serving.explorer import standalone_analytics
    from nextbest.serving.explorer_data import analytics

    settings = settings_from()
    catalog = catalog_from(settings)
    assert settings.decision_log_url is not None
    with open_decision_log(settings.decision_log_url) as log:
        data = analytics(log, catalog, since_days).as_dict()
    for item in tables(data):
        console.print(item, markup=False, soft_wrap=True) if isinstance(item, str) else console.print(item)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = out or settings.home / "reports" / f"report-{stamp}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(standalone_analytics(data))
    path.with_suffix(".json").write_text(json.dumps(data, indent=2, allow_nan=False))
    console.print(f"report: {path} (numbers {path.with_suffix('.json').name})", soft_wrap=True)
    if data["totals"]["skipped_rows"]:
        console.print(
            f"note: {data['totals']['skipped_rows']:,} logged decisions skipped (non-finite or negative revenue)",
            soft_wrap=True,
        )
    if data["totals"]["decisions"] == 0:
        days = "day" if math.isclose(since_days, 1) else "days"
        console.print(f"note: no decisions in the last {since_days:g} {days}", soft_wrap=True)
