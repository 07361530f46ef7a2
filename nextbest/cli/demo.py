"""``nextbest demo``: the whole job end to end on the embedded defaults (no services needed)."""

from __future__ import annotations

from pathlib import Path

import click

from nextbest.cli.common import catalog_from, console, settings_from, step
from nextbest.settings import Settings


def pick_demo_customer(data_dir: Path) -> int:
    """A customer worth looking at: email opt-in, no open ticket, and a promotion as the true best action."""
    import pandas as pd

    truth = pd.read_parquet(data_dir / "truth" / "now.parquet", columns=["customer_id", "oracle_action"])
    consents = pd.read_parquet(data_dir / "feature_tables" / "consent_state.parquet")
    tickets = pd.read_parquet(data_dir / "feature_tables" / "ticket_state.parquet")
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

    row = OnlineFeatureReader(open_store(settings), settings.serving.feature_service).read_one(customer)
    console.print(feature_table(row))
    return customer


@click.command()
@click.option("--customers", type=click.IntRange(1_000, 1_000_000), default=20_000, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=7, show_default=True)
def demo(customers: int, seed: int) -> None:
    """Generate a world, build the feature store and show one customer's online features."""
    settings = settings_from()
    console.rule(f"[bold]nextbest demo[/] (state in {settings.home})")
    run_foundation(settings, customers, seed)
    console.rule("[bold green]demo finished")
