"""``nextbest train``, ``nextbest evaluate``, ``nextbest promote``: the data scientist's loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from nextbest.cli.common import catalog_from, console, settings_from

_path = click.Path(path_type=Path)


def _progress() -> Any:
    from tqdm import tqdm

    bar = tqdm(desc="training", unit="step", leave=False, bar_format="{desc}: {n} steps {elapsed} {postfix}")

    def say(message: str) -> None:
        bar.set_postfix_str(message)
        bar.update(1)

    say.close = bar.close  # type: ignore[attr-defined]
    return say


def policy_table(report: Any, title: str) -> Table:
    from nextbest.training.jobs import policy_summary

    table = Table(title=title, title_justify="left")
    for col in ("policy", "DR value", "95% CI", "true value", "vs oracle", "lift capture", "worse than nothing"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for row in policy_summary(report):

        def fmt(v: float, pct: bool = False) -> str:
            return "—" if v != v else (f"{v:.1%}" if pct else f"{v:.3f}")

        table.add_row(
            row["policy"],
            fmt(row["dr"]),
            f"{row['ci'][0]:.2f} .. {row['ci'][1]:.2f}",
            fmt(row["true"]),
            fmt(row["ratio"], True),
            fmt(row["capture"], True),
            fmt(row["worse"], True),
        )
    return table


@click.command()
@click.option("--data", type=_path, default=None, help="Parquet/CSV of logged decisions with features (no Feast).")
@click.option("--catalog", type=_path, default=None, help="Action catalog YAML (costs, control action).")
@click.option("--config", type=_path, default=None, help="Training config YAML [training/configs/default.yaml].")
@click.option("--no-register", is_flag=True, help="Track the run but do not register a model version.")
def train(data: Path | None, catalog: Path | None, config: Path | None, no_register: bool) -> None:
    """Train uplift models, pick one by validation policy value, evaluate it, register it as @challenger."""
    from nextbest.training.config import load_train_config
    from nextbest.training.jobs import run_training

    settings = settings_from()
    cat = catalog_from(settings, catalog)
    cfg = load_train_config(config)
    say = _progress()
    outcome = run_training(settings, cat, cfg, data, register=not no_register, progress=say)
    say.close()
    result = outcome.result
    held = (
        f"{result.sizes['test']:,} customers held out"
        if result.sizes["test"]
        else f"evaluated out of fold ({result.sizes['folds']} folds by customer)"
    )
    console.print(
        f"[green]trained[/] on {result.sizes['train']:,} rows, {held}, in {result.timings['total']:.1f} s; "
        f"data {result.fingerprint}"
    )
    for note in result.notes:
        console.print(f"  note: {note}")
    for c in result.candidates:
        mark = "[bold]*[/]" if c.weight > 0 else " "
        console.print(
            f" {mark} {c.name}: out-of-fold value {c.valid_value['value']:.4g} ± {1.96 * c.valid_value['se']:.2g}, "
            f"blend weight {c.weight:.2f} ({c.trees} trees, {c.seconds:.1f} s)"
        )
    margin = result.model.decision_margin
    relative = result.model.metadata.get("margin_relative")
    scale = (
        f" = {relative:g} x value scale {result.model.value_scale:.3g}" if relative and result.model.value_scale else ""
    )
    console.print(policy_table(result.report, f"policy value per customer (decision margin {margin:.3g}{scale})"))
    where = (
        f"model {settings_from().serving.model_name} v{outcome.version} @challenger"
        if outcome.version
        else "not registered"
    )
    console.print(f"MLflow run {outcome.run_id}: {where}")


@click.command()
@click.option("--model", "ref", default="challenger", show_default=True, help="Alias or version number.")
@click.option("--config", type=_path, default=None)
@click.option("--catalog", type=_path, default=None)
def evaluate(ref: str, config: Path | None, catalog: Path | None) -> None:
    """Re-evaluate a registered model version on its held-out customers and log the report."""
    from nextbest.training.config import load_train_config
    from nextbest.training.jobs import run_evaluation

    settings = settings_from()
    report = run_evaluation(settings, catalog_from(settings, catalog), load_train_config(config), ref)
    console.print(policy_table(report, f"model {ref}: held-out policy value per customer"))
    q = ", ".join(f"{a} {v['qini_coefficient']:.4f}" for a, v in report.qini.items())
    auc = report.propensity["auc"]
    auc_text = "n/a (one outcome class)" if auc is None else f"{auc:.3f}"
    console.print(
        f"propensity AUC {auc_text}, log loss {report.propensity['log_loss']:.4f}, "
        f"ECE {report.propensity['ece']:.4f}; Qini: {q}"
    )


@click.command()
@click.option(
    "--margin",
    type=float,
    default=0.0,
    show_default=True,
    help="Required gain per customer beyond the interval's lower end.",
)
@click.option("--dry-run", is_flag=True, help="Decide and log, but do not move the alias.")
@click.option("--config", type=_path, default=None)
@click.option("--catalog", type=_path, default=None)
def promote(margin: float, dry_run: bool, config: Path | None, catalog: Path | None) -> None:
    """Move @champion to @challenger only if it is better beyond the confidence interval."""
    from nextbest.training.config import load_train_config
    from nextbest.training.promotion import promote as run

    settings = settings_from()
    decision = run(settings, catalog_from(settings, catalog), load_train_config(config), margin, dry_run)
    colour = "green" if decision.promoted else "yellow"
    console.print(f"[{colour}]{decision.reason}[/]")


@click.command()
@click.option(
    "--since-days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Only decisions from the last N days [all].",
)
@click.option("--config", type=_path, default=None, help="Training config [training/configs/retrain.yaml].")
@click.option("--catalog", type=_path, default=None)
@click.option("--no-promote", is_flag=True, help="Register the challenger but skip the promotion gate.")
def retrain(since_days: float | None, config: Path | None, catalog: Path | None, no_promote: bool) -> None:
    """Train a challenger on the service's own decisions and feedback; promote it only through the gate."""
    from nextbest.training.config import RETRAIN_CONFIG, load_train_config
    from nextbest.training.jobs import run_retraining

    settings = settings_from()
    say = _progress()
    outcome, decision = run_retraining(
        settings,
        catalog_from(settings, catalog),
        load_train_config(config or RETRAIN_CONFIG),
        since_days,
        not no_promote,
        say,
    )
    say.close()
    result = outcome.result
    console.print(
        f"[green]retrained[/] on {result.sizes['train'] + result.sizes['test']:,} logged decisions "
        f"({result.blend}, v{outcome.version} @challenger); " + ("; ".join(result.notes) or "all learners fitted")
    )
    console.print(policy_table(result.report, "held-out logged decisions: policy value per customer"))
    if decision is not None:
        console.print(f"[{'green' if decision.promoted else 'yellow'}]{decision.reason}[/]")
