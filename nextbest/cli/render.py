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
