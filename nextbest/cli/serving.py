"""``nextbest serve``, ``nextbest decide-batch``, ``nextbest openapi``: the decision service and its
offline twin."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from nextbest.cli.common import console, settings_from
from nextbest.errors import ConfigError


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port [NEXTBEST_SERVING__PORT or 3000].")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Worker processes [1].")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--insecure", is_flag=True, help="Allow a non-loopback --host without an API key (NEXTBEST_SERVING__API_KEY)."
)
def serve(port: int | None, workers: int | None, host: str, insecure: bool) -> None:
    """Run the BentoML decision service (replaces this process with `bentoml serve`)."""
    settings = settings_from()
    if settings.serving.api_key is None and not insecure and not _loopback(host):
        raise ConfigError(
            f"--host {host} is reachable from the network and no API key is set: set NEXTBEST_SERVING__API_KEY "
            "(see docs/security.md), or pass --insecure"
        )
    _check_port_free(host, port or settings.serving.port)
    env = dict(os.environ)
    env["NEXTBEST_HOME"] = str(settings.home)
    env.setdefault("BENTOML_HOME", str(settings.home / "bentoml"))
    env.setdefault("PYTHONOPTIMIZE", "1")  # skips typeguard instrumentation in Feast: start-up 3x faster
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # let the bytecode cache speed up the next start
    if workers:
        env["NEXTBEST_SERVING__WORKERS"] = str(workers)
    chosen = str(port or settings.serving.port)
    bentoml = Path(sys.executable).with_name("bentoml")
    args = [str(bentoml), "serve", "nextbest.serving.service:NextBest", "--host", host, "--port", chosen]
    console.print(f"serving on http://{host}:{chosen} (state in {settings.home}); docs at /docs")
    os.execve(str(bentoml), args, env)


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port_free(host: str, port: int) -> None:
    """Fail fast, in one line, when the port is taken (e.g. by the service of another checkout): BentoML would
    start, log ``Address already in use`` and die after the caller was told it is serving."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use; stop that service or use --port") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@click.command("decide-batch")
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Parquet/CSV with customer_id (strings or integers) and, for --features inline, the feature columns.",
)
@click.option("--output", "output_path", type=click.Path(path_type=Path), required=True, help="Parquet to write.")
@click.option("--channel", default="any", show_default=True, help="Channel of the campaign (or any).")
@click.option("--features", "source", type=click.Choice(["inline", "feast"]), default="inline", show_default=True)
@click.option("--model", "model_ref", default=None, help="Model directory, or registry alias/version [champion].")
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Action catalog to decide with; it must fit the model [the model's own; for models that do not store "
    "one, NEXTBEST_CATALOG_PATH].",
)
@click.option("--scores", is_flag=True, help="Add every candidate's net value (net_value__<action> columns).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan only: read contact histories from the decision log but record nothing (the decisions' ids then "
    "get a 404 from /feedback and their sends do not count toward contact policies).",
)
def decide_batch(
    input_path: Path,
    output_path: Path,
    channel: str,
    source: str,
    model_ref: str | None,
    catalog_path: Path | None,
    scores: bool,
    dry_run: bool,
) -> None:
    """Decide for every customer of a file with the same core and contact policies as the service, and record
    the decisions in the decision log (unless --dry-run); one row per customer."""
    from tqdm import tqdm

    from nextbest.io.decision_log import open_decision_log, redact
    from nextbest.serving.batch import (
        DecisionLogUse,
        feature_gaps,
        inline_features,
        read_customers,
        run_batch,
    )
    from nextbest.serving.components import build_policy
    from nextbest.serving.inputs import feast_rows
    from nextbest.serving.models import load_model_ref
    from nextbest.serving.runtime import freeze_startup_objects

    settings = settings_from()
    frame = read_customers(input_path)
    model = load_model_ref(settings, model_ref)
    catalog, notes = batch_catalog(settings, model, catalog_path)
    policy = build_policy(settings, catalog)
    view_status = None  # inline features have no freshness: every customer is decided by the model
    if source == "inline":
        features, feature_service = inline_features(frame, model), "inline"
    else:
        import time

        from nextbest.core.contract import model_feature_service
        from nextbest.core.features import DEFAULT_FEATURE_SERVICE
        from nextbest.features.online import OnlineFeatureReader
        from nextbest.features.store import open_store

        # The model's feature service is the contract (a model trained on a file reads the default one).
        feature_service = model_feature_service(model.metadata) or DEFAULT_FEATURE_SERVICE
        reader = OnlineFeatureReader(open_store(settings), feature_service)
        features, view_status = feast_rows(reader, frame["customer_id"].tolist(), time.time())
    gaps = feature_gaps(policy, features)
    if gaps:
        notes.append(gaps.describe("the input" if source == "inline" else "the online features"))
    for note in notes:
        console.print(f"[yellow]warning:[/] {note}", soft_wrap=True)
    assert settings.decision_log_url is not None
    freeze_startup_objects()  # the model, Feast and pandas out of the collector's reach: records build 2x faster
    with open_decision_log(settings.decision_log_url) as log:
        use = DecisionLogUse(log, settings.serving, feature_service, record=not dry_run)
        with tqdm(total=len(frame), desc="deciding", unit="customer", leave=False) as bar:
            result = run_batch(
                policy, model, frame, features, channel, progress=bar.update, scores=scores, log=use,
                view_status=view_status,
            )  # fmt: skip
    output_path.parent.mkdir(parents=True, exist_ok=True)
    result.frame.to_parquet(output_path)
    mix = result.frame["action"].value_counts(normalize=True).round(3).to_dict()
    rate = len(frame) / result.decide_seconds if result.decide_seconds else float("inf")
    console.print(
        f"[green]{len(frame):,} decisions[/] -> {output_path} in {result.seconds:.1f} s "
        f"({rate:,.0f} customers/s deciding); mix {mix}"
    )
    degraded = int(result.frame["degraded"].sum()) if "degraded" in result.frame else 0
    if degraded:
        reasons = result.frame.loc[result.frame["degraded"], "reason"].value_counts().head(3).to_dict()
        console.print(f"[yellow]{degraded:,} customers served the fallback[/] (control action): {reasons}")
    where = redact(settings.decision_log_url)
    read = f"contact histories read in {result.history_seconds:.1f} s"
    if dry_run:
        console.print(f"dry run: {read} from {where}; nothing recorded")
    else:
        console.print(f"{result.recorded:,} decisions recorded in {where} ({result.record_seconds:.1f} s); {read}")


def batch_catalog(settings: Any, model: Any, path: Path | None) -> tuple[Any, list[str]]:
    """The catalog a batch decides with, and notes about it: the model's own by default; ``path`` only when it
    fits the model (ConfigError naming what differs otherwise); the settings' catalog for models trained before
    models stored theirs."""
    from nextbest.core.catalog import load_catalog
    from nextbest.core.contract import compare_catalogs, model_catalog
    from nextbest.errors import ConfigError

    trained = model_catalog(model.metadata)
    version = model.metadata.get("version")
    name = f"model {version}" if version else "the model"
    if path is None:
        if trained is not None:
            return trained, []
        assert settings.catalog_path is not None
        live = load_catalog(settings.catalog_path)
        stored = model.metadata.get("catalog_hash")
        if stored and stored != live.content_hash:
            return live, [
                f"{name} does not store its catalog (trained before models did) and was trained with catalog "
                f"{stored}; deciding with {settings.catalog_path} ({live.content_hash}): its actions are not checked"
            ]
        return live, []
    live = load_catalog(path)
    if trained is None:
        return live, [f"{name} does not store its catalog (trained before models did): {path} is not checked"]
    diff = compare_catalogs(trained, live, str(path))
    if not diff.compatible:
        raise ConfigError(f"catalog {path} does not fit {name}: {diff.describe()}")
    if diff.tolerated:
        return live, [f"catalog {path} differs from {name}'s (decided with {path}'s values): {diff.describe()}"]
    return live, []


@click.command()
def openapi() -> None:
    """Print the service's OpenAPI document (the HTTP contract)."""
    from nextbest.serving.app import create_app

    click.echo(json.dumps(create_app().openapi(), indent=2, sort_keys=True))
