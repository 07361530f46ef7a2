"""Helpers shared by the CLI commands: settings, the catalog, and readable console output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter

import click
from rich.console import Console

from nextbest.core.catalog import ActionCatalog, load_catalog
from nextbest.settings import Settings, load_settings

console = Console(highlight=False)


def settings_from(ctx: click.Context | None = None) -> Settings:
    return load_settings()


def catalog_from(settings: Settings, path: Path | None = None) -> ActionCatalog:
    return load_catalog(path or settings.catalog_path)  # type: ignore[arg-type]


@contextmanager
def step(title: str) -> Iterator[None]:
    """Print a step and how long it took."""
    console.print(f"[bold cyan]→[/] {title} …")
    started = perf_counter()
    yield
    console.print(f"  [green]done[/] in {perf_counter() - started:.1f} s")
