"""Showing a rule what-if to the people who decide on it: a console summary, a chart, an HTML page, the JSON.

The HTML page is self-contained (the chart is embedded as a PNG), so it can be attached to a ticket or mailed
to a product manager who has nothing installed. Every value estimate says what it is based on: off-policy
from logged outcomes, or the model's own expectation when there are none.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from nextbest.core.ope import Estimate
from nextbest.core.simulation import SimulationReport

METHODS = {
    "dr": "doubly robust (off-policy)",
    "snips": "self-normalised IPS (off-policy)",
    "ips": "inverse propensity (off-policy)",
    "model": "model-based (expected net value)",
}


def _money(value: float, sign: bool = True) -> str:
    return "n/a" if value != value else (f"{value:+,.3f}" if sign else f"{value:,.3f}")


def _ci(e: Estimate) -> str:
    return "n/a" if e.ci_low != e.ci_low else f"{e.ci_low:+,.3f} .. {e.ci_high:+,.3f}"


def summary_lines(r: SimulationReport) -> list[str]:
    """The two sentences a product manager reads first."""
    what = "logged decisions" if r.source == "log" else "sampled customers (decided now)"
    share = r.changed / r.n if r.n else 0.0
    e = r.headline
    basis = (
        "doubly robust, off-policy from the logged probabilities and outcomes"
        if r.basis == "off-policy"
        else "model-based: the model's expected net value, bootstrap over customers; there are no outcomes"
    )
    return [
        f"Replayed {r.n:,} {what} under ruleset {r.live_version} (live) and {r.proposed_version} (proposed): "
        f"{r.changed:,} decisions ({share:.1%}) change.",
        f"Estimated change in net value: {_money(e.value)} {r.currency} per decision "
        f"({int(e.level * 100)}% CI {_ci(e)}; {basis}).",
    ]


def _changes(r: SimulationReport) -> list[tuple[str, str, int]]:
    t = r.transitions
    pairs = [(r.actions[i], r.actions[j], int(t[i, j])) for i, j in zip(*np.nonzero(t), strict=True) if i != j]
    return sorted(pairs, key=lambda p: -p[2])


def _shown_rules(r: SimulationReport) -> list[Any]:
    return [x for x in r.rules if x.live_hits or x.proposed_hits or x.live_mode != x.proposed_mode]


def tables(r: SimulationReport) -> list[Any]:
    """Rich renderables for the console (and notebooks)."""
    out: list[Any] = list(summary_lines(r))
    value = Table(title=f"value per decision ({r.currency})", title_justify="left")
    for col in ("method", "live", "proposed", "change", f"{int(r.headline.level * 100)}% CI of change"):
        value.add_column(col, justify="left" if col == "method" else "right")
    for key, e in r.change.items():
        value.add_row(METHODS[key], _money(r.live_value[key].value, False), _money(r.proposed_value[key].value, False),
                      _money(e.value), _ci(e))  # fmt: skip
    out.append(value)
    changes = Table(title="changed decisions (live -> proposed)", title_justify="left")
    for col in ("live action", "proposed action", "decisions", "share"):
        changes.add_column(col, justify="right" if col in ("decisions", "share") else "left")
    for a, b, count in _changes(r) or [("—", "—", 0)]:
        changes.add_row(a, b, f"{count:,}", f"{count / r.n:.1%}")
    out.append(changes)
    mix = Table(title="greedy decisions per action", title_justify="left")
    for col in ("action", "live", "proposed", "difference"):
        mix.add_column(col, justify="left" if col == "action" else "right")
    for action, (lv, pv) in r.mix().items():
        if lv or pv:
            mix.add_row(action, f"{lv:,}", f"{pv:,}", f"{pv - lv:+,}")
    out.append(mix)
    rules = Table(title="rule hit rates (share of decisions; shadow hits included)", title_justify="left")
    for col in ("rule", "mode", "live", "proposed", "change"):
        right = col in ("live", "proposed", "change")
        rules.add_column(col, justify="right" if right else "left", overflow="fold", no_wrap=right)
    for x in _shown_rules(r):
        lr, pr = x.live_hits / r.n, x.proposed_hits / r.n
        rules.add_row(x.rule_id, _modes(x), f"{lr:.1%}", f"{pr:.1%}", f"{pr - lr:+.1%}")
    out.append(rules)
    if r.replay_agreement is not None:
        out.append(f"The live replay reproduces {r.replay_agreement:.1%} of the logged greedy decisions.")
    out.extend(f"skipped {n:,}: {why}" for why, n in r.skipped.items())
    out.extend(f"note: {note}" for note in r.notes)
    return out


def figure(r: SimulationReport) -> Any:
    """Transition heatmap (changes coloured), value change with its interval, rule hit rates."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(17, 5.2), layout="constrained")
    ax_t, ax_v, ax_r = fig.subplots(1, 3, width_ratios=[1.15, 1.0, 1.25])
    used = [i for i in range(len(r.actions)) if r.transitions[i].any() or r.transitions[:, i].any()] or [0]
    t = r.transitions[np.ix_(used, used)].astype(float)
    off = np.where(np.eye(len(used), dtype=bool), np.nan, t)
    ax_t.imshow(off, cmap="Oranges", vmin=0, vmax=max(1.0, np.nanmax(off) if np.isfinite(off).any() else 1.0))
    names = [r.actions[i] for i in used]
    ax_t.set_xticks(range(len(used)), names, rotation=35, ha="right")
    ax_t.set_yticks(range(len(used)), names)
    for i, j in zip(*np.nonzero(t), strict=True):
        ax_t.text(j, i, f"{int(t[i, j]):,}", ha="center", va="center", fontsize=8,
                  color="grey" if i == j else "black", fontweight="normal" if i == j else "bold")  # fmt: skip
    ax_t.set_xlabel("proposed ruleset")
    ax_t.set_ylabel("live ruleset")
    ax_t.set_title(f"decisions: {r.changed:,} of {r.n:,} change")
    keys = list(r.change)
    ests = [r.change[k] for k in keys]
    y = np.arange(len(keys))[::-1]
    values = np.array([e.value for e in ests])
    lows = np.array([e.value - e.ci_low for e in ests])
    highs = np.array([e.ci_high - e.value for e in ests])
    colours = ["tab:blue" if k != "model" else "tab:grey" for k in keys]
    for yy, v, lo, hi, c in zip(y, values, lows, highs, colours, strict=True):
        ax_v.errorbar(v, yy, xerr=[[lo], [hi]], fmt="o", color=c, capsize=5)
    ax_v.axvline(0.0, color="black", lw=0.8)
    ax_v.set_yticks(y, [METHODS[k] for k in keys])
    ax_v.set_xlabel(f"change in net value per decision ({r.currency}), {int(r.headline.level * 100)}% CI")
    ax_v.set_title("value: proposed minus live" + (" (model-based)" if r.basis == "model" else ""))
    moved = sorted(_shown_rules(r), key=lambda x: (x.live_hits == x.proposed_hits, -max(x.live_hits, x.proposed_hits)))
    shown = moved[:14][::-1]  # rules whose hit rate changes first, then the most frequent
    yr = np.arange(len(shown))
    ax_r.barh(yr + 0.2, [x.live_hits / r.n for x in shown], 0.4, label="live", color="tab:grey")
    ax_r.barh(yr - 0.2, [x.proposed_hits / r.n for x in shown], 0.4, label="proposed", color="tab:orange")
    ax_r.set_yticks(yr, [f"{x.rule_id} ({_modes(x)})" for x in shown], fontsize=8)
    ax_r.set_xlabel("share of decisions the rule fired on")
    ax_r.set_title("rule hit rates")
    ax_r.legend(loc="lower right")
    return fig


def _modes(x: Any) -> str:
    return x.live_mode if x.live_mode == x.proposed_mode else f"{x.live_mode} -> {x.proposed_mode}"


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_page(r: SimulationReport, png: bytes) -> str:
    level = f"{int(r.headline.level * 100)}% CI"
    value_rows = [[METHODS[k], _money(r.live_value[k].value, False), _money(r.proposed_value[k].value, False),
                   _money(e.value), _ci(e)] for k, e in r.change.items()]  # fmt: skip
    change_rows = [[a, b, f"{c:,}", f"{c / r.n:.1%}"] for a, b, c in _changes(r)]
    rule_rows = [[x.rule_id, x.live_mode, x.proposed_mode, f"{x.live_hits / r.n:.1%}", f"{x.proposed_hits / r.n:.1%}"]
                 for x in _shown_rules(r)]  # fmt: skip
    extra = [f"skipped {n:,}: {why}" for why, n in r.skipped.items()] + [f"note: {n}" for n in r.notes]
    if r.replay_agreement is not None:
        extra.insert(0, f"The live replay reproduces {r.replay_agreement:.1%} of the logged greedy decisions.")
    image = base64.b64encode(png).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nextbest rule what-if</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}th{{background:#f3f3f3}}.lead{{font-size:1.15em}}
img{{max-width:100%}}</style></head><body>
<h1>Rule what-if: {html.escape(r.proposed_version)} vs {html.escape(r.live_version)}</h1>
{"".join(f'<p class="lead">{html.escape(s)}</p>' for s in summary_lines(r))}
<img alt="transition matrix, value change and rule hit rates" src="data:image/png;base64,{image}">
<h2>Value per decision ({html.escape(r.currency)})</h2>
{_html_table(["method", "live", "proposed", "change", level], value_rows)}
<h2>Changed decisions</h2>
{_html_table(["live action", "proposed action", "decisions", "share"], change_rows or [["none", "", "0", "0%"]])}
<h2>Rule hit rates (share of decisions, shadow hits included)</h2>
{_html_table(["rule", "live mode", "proposed mode", "live", "proposed"], rule_rows)}
{"".join(f"<p>{html.escape(s)}</p>" for s in extra)}
</body></html>
"""


def write_report(r: SimulationReport, out_dir: Path) -> dict[str, Path]:
    """``simulation.json``, ``simulation.png`` and a self-contained ``simulation.html`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure(r).savefig(buffer, format="png", dpi=110)
    png = buffer.getvalue()
    paths = {
        "json": out_dir / "simulation.json",
        "png": out_dir / "simulation.png",
        "html": out_dir / "simulation.html",
    }
    paths["json"].write_text(json.dumps(r.as_dict(), indent=2))
    paths["png"].write_bytes(png)
    paths["html"].write_text(html_page(r, png))
    return paths
