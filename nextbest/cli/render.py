"""Readable console views of features and decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from nextbest.core.features import REQUEST_FEATURES, all_fields, view


def _fmt(name: str, value: Any) -> str:
    if value is None:
        return "[dim]—[/]"
    if name.endswith("_ts"):
        return datetime.fromtimestamp(int(value), UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def feature_table(row: Any) -> Table:
    """One customer's online features grouped by view, with each view's freshness."""
    table = Table(title=f"customer {row.customer_id}: online features (times UTC)", title_justify="left")
    table.add_column("view", style="bold")
    table.add_column("feature")
    table.add_column("value", justify="right")
    table.add_column("status")
    style = {"fresh": "green", "stale": "yellow", "missing": "red"}
    for name, status in row.view_status.items():
        ts = row.view_timestamps[name]
        label = f"[{style[status]}]{status}[/]" + (f" {_fmt('x_ts', ts)}" if ts else "")
        for i, feature in enumerate(view(name).served_names):
            table.add_row(
                name if i == 0 else "",
                feature,
                _fmt(feature, row.values.get(feature)),
                label if i == 0 else "",
            )
        table.add_section()
    fields = all_fields()
    for i, f in enumerate(REQUEST_FEATURES):
        table.add_row(
            "request_time" if i == 0 else "",
            f.name,
            _fmt(f.name, row.values.get(f.name)),
            "computed at request" if i == 0 else "",
        )
    assert fields  # every request feature is declared
    return table


def decision_table(title: str, d: dict[str, Any]) -> Table:
    """A decision's ranked candidates with their scores and any suppression."""
    suppressed = {s["action"]: s for s in d.get("suppressed", [])}
    flag = " [yellow](degraded)[/]" if d.get("degraded") else ""
    table = Table(
        title=f"{title}: [bold]{d.get('action')}[/]{flag} (p={d.get('probability', 0):.3f})", title_justify="left"
    )
    for col in ("rank", "action", "propensity", "uplift", "net value", "why not"):
        table.add_column(col, justify="left" if col in ("action", "why not") else "right")
    for c in d.get("candidates", []):
        why = (
            "; ".join(
                f"{rid}: {msg}"
                for rid, msg in zip(
                    suppressed[c["action"]]["rule_ids"], suppressed[c["action"]]["messages"], strict=True
                )
            )
            if c["action"] in suppressed
            else ""
        )
        table.add_row(
            str(c["rank"]), c["action"], f"{c['propensity']:.3f}", f"{c['uplift']:+.3f}", f"{c['net_value']:+.2f}", why
        )
    return table


def walkthrough_tables(walk: Any) -> list[Any]:
    out: list[Any] = [f"[bold]customer {walk.customer_id}[/]"]
    for title, payload in walk.steps:
        if "candidates" in payload:
            out.append(decision_table(title, payload))
        else:
            out.append(f"[cyan]{title}[/]: {payload}")
    return out
