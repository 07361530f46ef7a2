"""``nextbest rules check|test|simulate``: the product team's loop for guardrail rules (docs/rules.md).

Edit a rule, ``check`` it (schema, CEL, features, types; never-firing rules on real customers), ``test`` it
against its cases, ``simulate`` it on recent decisions, then let the service reload it. Exit codes: 0 ok,
1 when the rules fail a check or a test, 2 for usage and configuration errors. Every problem is one line
naming the file, the rule and what is wrong.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from nextbest.cli.common import catalog_from, console, settings_from

_file = click.Path(exists=True, dir_okay=False, path_type=Path)
DAY = 86_400.0


@click.group()
def rules() -> None:
    """Check, test and simulate guardrail rules before they go live."""


def _issue(level: str, text: str) -> None:
    click.echo(f"{level}: {text}", err=True)


def _histories(settings: Any, catalog: Any, ids: list[str], now: float) -> list[Any] | None:
    """Contact histories of sampled customers from the decision log (None when it has none)."""
    try:
        from nextbest.core.contact import HistoryBuilder
        from nextbest.io.decision_log import open_decision_log
        from nextbest.serving.simulation_data import ContactHistories

        builder = HistoryBuilder(catalog.channels, catalog.control)
        s = settings.serving
        with open_decision_log(settings.decision_log_url) as log:
            found = ContactHistories(log, builder, s.history_days, s.contacts_from == "feedback", now)
            histories = [found.at(c, now) for c in ids]
    except Exception:
        return None
    if all(h is None for h in histories):
        return None
    return [builder.empty() if h is None else h for h in histories]


@rules.command()
@click.argument("file", required=False, type=_file)
@click.option("--params", type=_file, default=None, help="Parameter file [settings: rule_params_path].")
@click.option(
    "--sample",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="Also warn about rules that never fire and actions nobody can get, on N customers' real features.",
)
def check(file: Path | None, params: Path | None, sample: int | None) -> None:
    """Check a rule file [settings: rules_path] against the catalog and the feature service."""
    from nextbest.core.features import all_fields
    from nextbest.core.rules import load_ruleset
    from nextbest.core.rules.check import check as run_check
    from nextbest.errors import ConfigError

    settings = settings_from()
    path = file or settings.rules_path
    assert path is not None
    catalog = catalog_from(settings)
    try:
        ruleset = load_ruleset(path, params or settings.rule_params_path)
    except ConfigError as exc:
        _issue("error", str(exc))
        raise SystemExit(1) from None
    samples = histories = None
    where = ""
    if sample:
        from nextbest.serving.simulation_data import sample_features

        now = time.time()
        ids, samples, where = sample_features(settings, sample, now)
        histories = _histories(settings, catalog, ids, now)
        where = f"; sample: {where}" + ("" if histories else ", no contact history in the decision log")
    report = run_check(ruleset, all_fields(), catalog, samples, histories=histories)
    for issue in report.errors:
        _issue("error", str(issue))
    for issue in report.warnings:
        _issue("warning", str(issue))
    counts = ", ".join(f"{ruleset.count(m)} {m}" for m in ("enforce", "shadow", "off"))
    colour = "green" if report.ok else "red"
    console.print(
        f"[{colour}]{'ok' if report.ok else 'failed'}[/]: {path} ({ruleset.rule_count} rules: {counts}; "
        f"version {ruleset.version}): {len(report.errors)} errors, {len(report.warnings)} warnings{where}",
        soft_wrap=True,
    )
    if not report.ok:
        raise SystemExit(1)


def _case_files(cases: tuple[Path, ...], rules_path: Path, settings_rules: Path) -> list[Path]:
    """Case files: the arguments (files or directories), else ``cases/`` beside the rule file, else beside
    the configured one (a proposed copy of the rules is tested against the team's cases)."""
    if not cases:
        beside = rules_path.parent / "cases"
        cases = (beside if beside.is_dir() else settings_rules.parent / "cases",)
    files: list[Path] = []
    for item in cases:
        files.extend(sorted(item.glob("*.yaml")) if item.is_dir() else [item])
    if not files:
        from nextbest.errors import ConfigError

        raise ConfigError(f"no case files (*.yaml) in {', '.join(str(c) for c in cases)}")
    return files


@rules.command("test")
@click.argument("cases", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--rules", "rules_file", type=_file, default=None, help="Rule file [settings: rules_path].")
@click.option("--params", type=_file, default=None, help="Parameters [params/default.yaml beside the rule file].")
@click.option(
    "--coverage/--no-coverage",
    default=None,
    help="Fail unless every rule has a firing and a non-firing case [on unless CASES names single files].",
)
def test_cases(cases: tuple[Path, ...], rules_file: Path | None, params: Path | None, coverage: bool | None) -> None:
    """Run rule test cases [cases/*.yaml beside the rule file] and report coverage."""
    from rich.table import Table

    from nextbest.core.features import all_fields
    from nextbest.core.rules import load_ruleset
    from nextbest.core.rules.cases import coverage as case_coverage
    from nextbest.core.rules.cases import load_cases, run_cases

    settings = settings_from()
    path = rules_file or settings.rules_path
    assert path is not None
    default_params = path.parent / "params" / "default.yaml"
    ruleset = load_ruleset(path, params or (default_params if default_params.is_file() else settings.rule_params_path))
    assert settings.rules_path is not None
    files = _case_files(cases, path, settings.rules_path)
    results = run_cases(ruleset, catalog_from(settings), load_cases(files), all_fields())
    table = Table(title=f"rule cases: {path.name} (version {ruleset.version})", title_justify="left")
    for col in ("file", "case", "result", "details"):
        table.add_column(col)
    for r in results:
        status = "[green]ok[/]" if r.passed else "[red]FAIL[/]"
        table.add_row(Path(r.source).name, r.name, status, "; ".join(r.failures), style=None if r.passed else "red")
    console.print(table)
    failed = [r for r in results if not r.passed]
    for r in failed:
        _issue("FAIL", str(r))
    covered = case_coverage(ruleset, results)
    missing = {rule: c for rule, c in covered.items() if c != (True, True)}
    enforce = coverage if coverage is not None else all(c.is_dir() for c in cases)
    if missing:
        gaps = Table(title="rules without a firing and a non-firing case", title_justify="left")
        for col in ("rule", "fires", "does not fire"):
            gaps.add_column(col)
        for rule, (fires, quiet) in missing.items():
            gaps.add_row(rule, "yes" if fires else "[red]missing[/]", "yes" if quiet else "[red]missing[/]")
        console.print(gaps)
    console.print(
        f"{len(results) - len(failed)}/{len(results)} cases passed in {len(files)} files; coverage: "
        f"{len(covered) - len(missing)}/{len(covered)} rules have a firing and a non-firing case"
        + ("" if enforce or not missing else " (not required for a subset of case files)"),
        markup=False,
        soft_wrap=True,
    )
    if failed or (enforce and missing):
        raise SystemExit(1)


def _margins(settings: Any, notes: list[str]) -> Any:
    """The decision margin of each logged model version (the replay must use the margin the model had)."""
    from nextbest.serving.models import load_model_ref

    cache: dict[str | None, float] = {}

    def margin(version: str | None) -> float:
        if version not in cache:
            model_dir = settings.serving.model_dir
            ref = str(model_dir) if model_dir else (version if version and version.isdigit() else None)
            try:
                cache[version] = float(load_model_ref(settings, ref).decision_margin)
            except Exception as exc:
                cache[version] = 0.0
                notes.append(f"model {version}: decision margin unknown ({type(exc).__name__}); replayed with 0")
        return cache[version]

    return margin


@rules.command()
@click.option("--proposed", type=_file, required=True, help="The proposed rule file.")
@click.option("--params", type=_file, default=None, help="Parameters of the proposed rules [the live ones].")
@click.option(
    "--since",
    "since_days",
    type=click.FloatRange(0, min_open=True),
    default=7.0,
    show_default=True,
    help="Replay decisions of the last DAYS days.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=20_000,
    show_default=True,
    help="At most N decisions (newest first), or N sampled customers.",
)
@click.option(
    "--source",
    type=click.Choice(["log", "customers"]),
    default="log",
    show_default=True,
    help="Logged decisions (off-policy value) or customers from the online store (model-based value).",
)
@click.option("--channel", default="any", show_default=True, help="Request channel for --source customers.")
@click.option("--model", "model_ref", default=None, help="Model for --source customers [champion alias].")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Report directory [NEXTBEST_HOME/reports/simulate-<time>].",
)
def simulate(
    proposed: Path,
    params: Path | None,
    since_days: float,
    limit: int,
    source: str,
    channel: str,
    model_ref: str | None,
    out: Path | None,
) -> None:
    """Replay decisions under the live and the proposed rules: changed decisions, rule hit rates, value."""
    from nextbest.cli.simulation_report import tables, write_report
    from nextbest.core.contact import HistoryBuilder
    from nextbest.core.decision import DecisionPolicy
    from nextbest.core.features import all_fields
    from nextbest.core.rules import load_ruleset
    from nextbest.core.rules.check import check as run_check
    from nextbest.core.simulation import simulate as run_simulation
    from nextbest.errors import DataError
    from nextbest.io.decision_log import open_decision_log, redact
    from nextbest.serving.components import Components
    from nextbest.serving.simulation_data import ContactHistories, rows_from_customers, rows_from_log

    settings = settings_from()
    live = Components(settings, load_model=False).policy
    ruleset = load_ruleset(proposed, params or settings.rule_params_path)
    run_check(ruleset, all_fields(), live.catalog).raise_for_errors()
    candidate = DecisionPolicy(live.catalog, ruleset, live.exploration, fields=all_fields())
    now = time.time()
    assert settings.decision_log_url is not None
    s = settings.serving
    with open_decision_log(settings.decision_log_url) as log:
        if source == "log":
            notes: list[str] = []
            loaded = rows_from_log(
                log,
                live.catalog,
                since=now - since_days * DAY,
                until=now,
                limit=limit,
                history_days=s.history_days,
                delivered_only=s.contacts_from == "feedback",
                margin=_margins(settings, notes),
            )
            loaded.notes.extend(notes)
            where = f"the decision log {redact(settings.decision_log_url)} in the last {since_days:g} days"
        else:
            from nextbest.serving.models import load_model_ref

            model = load_model_ref(settings, model_ref)
            builder = HistoryBuilder(live.catalog.channels, live.catalog.control)
            found = ContactHistories(log, builder, s.history_days, s.contacts_from == "feedback", now)
            loaded = rows_from_customers(settings, live, model, n=limit, channel=channel, now=now, histories=found)
            where = f"{limit} customers sampled from the online store"
    if not loaded.rows:
        skipped = "; ".join(f"{n} {why}" for why, n in loaded.skipped.items()) or "none found"
        raise DataError(f"nothing to simulate in {where} ({skipped}); make decisions first or use --source customers")
    versions = sorted(v for v in loaded.versions if v != live.ruleset.version)
    if versions:
        loaded.notes.append(f"some decisions were logged under other rulesets ({', '.join(versions)})")
    report = run_simulation(live, candidate, loaded.rows, source=source, skipped=loaded.skipped, notes=loaded.notes)
    for item in tables(report):
        console.print(item, markup=False, soft_wrap=True) if isinstance(item, str) else console.print(item)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    paths = write_report(report, out or settings.home / "reports" / f"simulate-{stamp}")
    console.print(f"report: {paths['html']} (chart {paths['png'].name}, numbers {paths['json'].name})", soft_wrap=True)
