"""``nextbest data``: generate the synthetic customer world."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from nextbest.cli.common import catalog_from, console, settings_from
from nextbest.errors import DataError


@click.group()
def data() -> None:
    """Synthetic customer data with known ground truth."""


@data.command("generate")
@click.option("--customers", type=click.IntRange(100, 5_000_000), default=20_000, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=7, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output directory [NEXTBEST_HOME/data].")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="End of the history (UTC) [now]. Same seed and as-of give the same world.",
)
@click.option("--catalog", type=click.Path(path_type=Path), default=None, help="Action catalog YAML.")
def generate(customers: int, seed: int, out: Path | None, as_of: datetime | None, catalog: Path | None) -> None:
    """Generate customers, their history, a randomised campaign log and the ground truth."""
    from tqdm import tqdm

    from nextbest.world.config import WorldConfig
    from nextbest.world.generate import generate_world

    settings = settings_from()
    target = (out or settings.data_dir).expanduser().resolve()  # type: ignore[union-attr]
    if target.exists() and not target.is_dir():
        raise DataError(f"--out {target} exists and is not a directory")
    cfg = WorldConfig(customers=customers, seed=seed, **({"as_of": as_of} if as_of else {}))
    cat = catalog_from(settings, catalog)
    bar = tqdm(total=4, desc="generating", unit="step", leave=False)

    def advance(name: str) -> None:
        bar.set_postfix_str(name)
        bar.update(1 if bar.n < bar.total else 0)

    counts = generate_world(cfg, cat, target, step=advance)
    bar.close()
    console.print(f"[green]world written[/] to {target} (as of {cfg.as_of.isoformat()}, seed {seed})")
    for name, rows in counts.items():
        console.print(f"  {name:<22} {rows:>12,} rows")
