"""``nextbest features``: register definitions, load the online store, read and update customer features."""

from __future__ import annotations

import json
import time
from datetime import datetime

import click

from nextbest.cli.common import console, settings_from, step


@click.group()
def features() -> None:
    """The Feast feature repository."""


@features.command("apply")
def apply_cmd() -> None:
    """Register entities, sources, views and feature services (from any working directory)."""
    from nextbest.features.store import apply

    settings = settings_from()
    notes: list[str] = []
    with step(f"feast apply ({settings.environment}, data in {settings.data_dir})"):
        names = apply(settings, notes=notes)
    console.print(f"  {len(names)} objects registered")
    for note in notes:
        console.print(f"  [yellow]note:[/] {note}", soft_wrap=True)


@features.command("materialize")
@click.option(
    "--end",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    default=None,
    help="Load values up to this time (UTC) [now].",
)
def materialize_cmd(end: datetime | None) -> None:
    """Load the latest feature values into the online store."""
    from datetime import UTC

    from nextbest.features.store import materialize

    settings = settings_from()
    with step("feast materialize"):
        start, stop = materialize(settings, end.replace(tzinfo=UTC) if end else None)
    console.print(f"  window {start:%Y-%m-%d} .. {stop:%Y-%m-%d %H:%M} UTC")


@features.command("show")
@click.argument("customer_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--feature-service", "service", default="nba_v1", show_default=True, help="Feature service to read.")
def show_cmd(customer_id: str, as_json: bool, service: str) -> None:
    """Print one customer's online features (CUSTOMER_ID as stored: 42, C0112906, a UUID), with stale values
    shown as missing."""
    from nextbest.core.features import FEATURE_SERVICES
    from nextbest.core.ids import InvalidCustomerId, canonical_customer_id
    from nextbest.errors import ConfigError, DataError, NotFoundError
    from nextbest.features.online import OnlineFeatureReader
    from nextbest.features.store import open_store

    try:
        customer_id = canonical_customer_id(customer_id)
    except InvalidCustomerId as exc:
        raise DataError(f"customer_id: {exc}") from None
    settings = settings_from()
    if service not in FEATURE_SERVICES:
        raise ConfigError(f"--feature-service {service!r}: unknown; the project serves {sorted(FEATURE_SERVICES)}")
    reader = OnlineFeatureReader(open_store(settings), service)
    if reader.key_problem:
        raise ConfigError(reader.key_problem)
    row = reader.read_one(customer_id)
    if not row.found:
        raise NotFoundError(f"customer {customer_id} has no features in the online store ({settings.environment})")
    if as_json:
        click.echo(json.dumps(row.as_dict(), indent=2, default=str))
        return
    from nextbest.cli.render import feature_table

    console.print(feature_table(row))


@features.command("push")
@click.argument("event_json")
def push_cmd(event_json: str) -> None:
    """Push one real-time event, e.g. '{"type": "ticket_opened", "customer_id": 7, ...}'."""
    from pydantic import ValidationError

    from nextbest.core.events import future_time_error, parse_event
    from nextbest.errors import DataError, describe_validation_error
    from nextbest.features.events import EventWriter
    from nextbest.features.store import open_store

    try:
        event = parse_event(json.loads(event_json))
    except json.JSONDecodeError as exc:
        raise DataError(f"event is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    except ValidationError as exc:
        raise DataError(describe_validation_error(exc, prefix="event.")) from exc
    settings = settings_from()
    too_late = future_time_error(event.timestamp, time.time(), settings.serving.max_clock_skew_s)
    if too_late:
        raise DataError(f"event.timestamp: {too_late}")
    result = EventWriter(open_store(settings)).push(event)
    console.print(f"{event.type} for customer {event.customer_id}: {result.outcome} ({result.view})")
