"""``nextbest demo``: the whole job end to end on the embedded defaults (no services needed)."""

from __future__ import annotations

from pathlib import Path

import click

from nextbest.cli.common import catalog_from, console, settings_from, step
from nextbest.settings import Settings


def pick_demo_customer(data_dir: Path) -> int:
    """A customer worth looking at: email opt-in, no open ticket, and a promotion as the true best action."""
    import numpy as np
    import pandas as pd

    truth = pd.read_parquet(data_dir / "truth" / "now.parquet", columns=["customer_id", "oracle_action"])
    consents = pd.read_parquet(data_dir / "feature_tables" / "consent_state.parquet")
    tickets = pd.read_parquet(data_dir / "feature_tables" / "ticket_state.parquet")
    for table in (consents, tickets):  # feature tables key customers by string id, the world's truth by integer
        table["customer_id"] = table["customer_id"].astype(np.int64)
    latest = [
        t.sort_values("event_timestamp").groupby("customer_id").tail(1).set_index("customer_id")
        for t in (consents, tickets)
    ]
    ok = truth.set_index("customer_id").join(latest[0]["email_opt_in"]).join(latest[1]["open_tickets"])
    promo_best = ok["oracle_action"].isin(["email_promo", "discount_10"])
    ok = ok[(ok["email_opt_in"] == 1) & (ok["open_tickets"] == 0) & promo_best]
    return int(ok.index.min()) if len(ok) else int(truth["customer_id"].min())


def run_foundation(settings: Settings, customers: int, seed: int) -> int:
    from nextbest.features.online import OnlineFeatureReader
    from nextbest.features.store import apply, materialize, open_store
    from nextbest.world.config import WorldConfig
    from nextbest.world.generate import generate_world

    data_dir = settings.data_dir
    assert data_dir is not None
    with step(f"generate a synthetic world of {customers:,} customers into {data_dir}"):
        counts = generate_world(WorldConfig(customers=customers, seed=seed), catalog_from(settings), data_dir)
        console.print(
            f"  {counts['campaign_log']:,} campaign decisions, {counts['orders']:,} orders, "
            f"{counts['tickets']:,} service tickets"
        )
    with step("register the Feast repository (SQLite online, DuckDB offline)"):
        apply(settings)
    with step("materialize the latest features into the online store"):
        materialize(settings)
    customer = pick_demo_customer(data_dir)
    from nextbest.cli.render import feature_table
    from nextbest.core.features import DEFAULT_FEATURE_SERVICE

    row = OnlineFeatureReader(open_store(settings), DEFAULT_FEATURE_SERVICE).read_one(customer)
    console.print(feature_table(row))
    return customer


def run_training_steps(settings: Settings) -> None:
    from nextbest.cli.training import policy_table
    from nextbest.training.config import load_train_config
    from nextbest.training.jobs import run_training
    from nextbest.training.promotion import promote

    catalog = catalog_from(settings)
    cfg = load_train_config()
    with step("train S, T and DR uplift learners; pick by validation policy value; register @challenger"):
        outcome = run_training(settings, catalog, cfg)
    console.print(
        policy_table(
            outcome.result.report,
            f"policy value per customer, out of fold ({outcome.result.blend}, v{outcome.version})",
        )
    )
    with step("promotion gate: challenger vs champion on the same held-out customers"):
        decision = promote(settings, catalog, cfg)
    console.print(f"  [{'green' if decision.promoted else 'yellow'}]{decision.reason}[/]")


def run_service_walkthrough(settings: Settings, port: int, keep: bool) -> None:
    import uuid

    from nextbest.cli.render import walkthrough_tables
    from nextbest.cli.walkthrough import run_walkthrough, start_service, stop_service, wait_ready
    from nextbest.errors import UnavailableError

    base = f"http://127.0.0.1:{port}"
    pid_file = settings.home / "serve.pid"
    stop_previous(pid_file)
    with step(f"start the decision service (bentoml serve) on {base}"):
        instance = uuid.uuid4().hex
        process = start_service(settings.home, port, settings.home / "serve.log", instance_id=instance)
        pid_file.write_text(str(process.pid))
        try:
            wait_ready(base, process, instance_id=instance)
        except UnavailableError:
            stop_service(process)
            pid_file.unlink(missing_ok=True)
            raise
    try:
        with step("walk-through: decide, open a ticket, decide, close it, decide, send feedback"):
            walk = run_walkthrough(base)
        for renderable in walkthrough_tables(walk):
            console.print(renderable)
    finally:
        if not keep:
            stop_service(process)
            pid_file.unlink(missing_ok=True)
    if keep:
        console.print(
            f"[bold]the service keeps running[/] at {base} (pid {process.pid}, log "
            f"{settings.home / 'serve.log'}); API docs at {base}/docs; stop it with `make stop`"
        )


def stop_previous(pid_file: Path) -> None:
    import contextlib
    import os
    import signal

    if pid_file.is_file():
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink(missing_ok=True)


@click.command()
@click.option("--customers", type=click.IntRange(1_000, 1_000_000), default=20_000, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=7, show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option("--keep/--no-keep", default=True, show_default=True, help="Leave the service running at the end.")
def demo(customers: int, seed: int, port: int, keep: bool) -> None:
    """The whole job: world, feature store, training and promotion, then the service and a walk-through."""
    settings = settings_from()
    console.rule(f"[bold]nextbest demo[/] (state in {settings.home})")
    run_foundation(settings, customers, seed)
    run_training_steps(settings)
    run_service_walkthrough(settings, port, keep)
    console.rule("[bold green]demo finished")


@click.command()
def stop() -> None:
    """Stop a service started by `nextbest demo`."""
    settings = settings_from()
    stop_previous(settings.home / "serve.pid")
    console.print("stopped")
