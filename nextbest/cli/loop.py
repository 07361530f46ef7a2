"""``nextbest simulate-loop``: the closed loop on the synthetic world (see ``nextbest.training.loop``)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click
import httpx
from rich.progress import Progress
from rich.table import Table

from nextbest.cli.common import catalog_from, console, settings_from, step
from nextbest.settings import Settings
from nextbest.training.loop import LoopReport, RoundResult


def _ensure_world(settings: Settings, customers: int, seed: int) -> None:
    from nextbest.features.store import apply, materialize
    from nextbest.world.config import WorldConfig
    from nextbest.world.generate import generate_world

    assert settings.data_dir is not None
    with step(f"generate a fresh world of {customers:,} customers, apply and materialize the feature store"):
        generate_world(WorldConfig(customers=customers, seed=seed), catalog_from(settings), settings.data_dir)
        apply(settings)
        materialize(settings)


def _auth(settings: Settings) -> dict[str, str]:
    key = settings.serving.api_key
    return {"X-API-Key": key.get_secret_value()} if key else {}


def _gate(r: RoundResult) -> str:
    diff = re.search(r"difference (.*?) per customer", r.gate)
    return ("promoted" if r.promoted else "kept champion") + (f": {diff.group(1)}" if diff else "")


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def rounds_table(report: LoopReport) -> Table:
    table = Table(title="closed loop: true net value per customer of each round's decisions", title_justify="left")
    for col in (
        "round",
        "model",
        "served (true)",
        "vs eligible oracle",
        "vs oracle",
        "explored",
        "champion greedy (true)",
        "challenger greedy (true)",
        "gate: challenger - champion, DR 95% CI",
    ):
        table.add_column(col, justify="left" if col.startswith("gate") else "right")
    for r in report.rounds:
        table.add_row(
            str(r.round),
            f"v{r.model_version}",
            f"{r.true_value:.3f}",
            f"{r.ratio:.1%}",
            f"{r.true_value / r.oracle_value:.1%}",
            f"{r.exploration_share:.1%}",
            _value(r.champion_policy_value),
            _value(r.challenger_policy_value),
            _gate(r),
        )
    return table


@click.command("simulate-loop")
@click.option("--rounds", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option(
    "--decisions", type=click.IntRange(100, 1_000_000), default=20_000, show_default=True, help="Decisions per round."
)
@click.option(
    "--customers",
    type=click.IntRange(1_000, 2_000_000),
    default=None,
    help="World size [rounds x decisions, so every decision is a new customer].",
)
@click.option(
    "--weak-rows",
    type=click.IntRange(50, 100_000),
    default=600,
    show_default=True,
    help="Historical rows the weak starting model is trained on.",
)
@click.option("--exploration", type=click.FloatRange(0, 1), default=0.1, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=3007, show_default=True)
@click.option("--seed", type=int, default=11, show_default=True)
@click.option("--reuse-world", is_flag=True, help="Use the existing world and feature store under NEXTBEST_HOME.")
def simulate_loop(
    rounds: int,
    decisions: int,
    customers: int | None,
    weak_rows: int,
    exploration: float,
    port: int,
    seed: int,
    reuse_world: bool,
) -> None:
    """Decide, observe, retrain, gate, reload: the loop from a weak start toward the oracle."""
    import uuid

    from nextbest.cli.walkthrough import start_service, stop_service, wait_ready
    from nextbest.errors import UnavailableError
    from nextbest.training.loop import LoopConfig, run_loop, weak_start
    from nextbest.training.plots import loop_curve

    settings = settings_from()
    catalog = catalog_from(settings)
    cfg = LoopConfig(rounds=rounds, decisions=decisions, weak_rows=weak_rows, seed=seed)
    if not reuse_world:
        _ensure_world(settings, customers or rounds * decisions, seed)
    with step("train the weak starting champion"):
        version = weak_start(settings, catalog, cfg, lambda m: console.print(f"  {m}"))
    base = f"http://127.0.0.1:{port}"
    env = {"NEXTBEST_SERVING__EXPLORATION_RATE": str(exploration), "NEXTBEST_SERVING__RELOAD_INTERVAL_S": "0"}
    with step(f"start the decision service with champion v{version} on {base}"):
        instance = uuid.uuid4().hex
        process = start_service(settings.home, port, settings.home / "loop-serve.log", env, instance_id=instance)
        try:
            wait_ready(base, process, instance_id=instance)
        except UnavailableError:
            stop_service(process)
            raise
    try:
        with (
            httpx.Client(base_url=base, timeout=120, headers=_auth(settings)) as client,
            Progress(console=console, transient=True) as progress,
        ):
            task = progress.add_task("decisions", total=rounds * decisions)
            report = run_loop(
                settings,
                catalog,
                cfg,
                client,
                lambda m: progress.console.print(f"  {m}"),
                advance=lambda n: progress.advance(task, n),
            )
    finally:
        stop_service(process)
    out = settings.home / "reports" / f"loop-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    loop_curve(report).savefig(out / "loop.png", dpi=120)
    report.artifacts = {"plot": str(out / "loop.png"), "json": str(out / "loop.json")}
    Path(out / "loop.json").write_text(json.dumps(report.as_dict(), indent=2))
    console.print(rounds_table(report))
    console.print(f"plot {out / 'loop.png'}; numbers {out / 'loop.json'}")
