"""The ``nextbest`` command. Subcommands import their dependencies lazily so ``--help`` stays instant."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click
from pydantic import ValidationError

from nextbest.errors import NextbestError, describe_validation_error

# name -> "module:attribute"; modules are imported only when their command runs.
COMMANDS: dict[str, str] = {
    "data": "nextbest.cli.data:data",
    "features": "nextbest.cli.features:features",
    "demo": "nextbest.cli.demo:demo",
    "stop": "nextbest.cli.demo:stop",
    "train": "nextbest.cli.training:train",
    "evaluate": "nextbest.cli.training:evaluate",
    "promote": "nextbest.cli.training:promote",
    "retrain": "nextbest.cli.training:retrain",
    "simulate-loop": "nextbest.cli.loop:simulate_loop",
    "serve": "nextbest.cli.serving:serve",
    "decide-batch": "nextbest.cli.serving:decide_batch",
    "openapi": "nextbest.cli.serving:openapi",
    "rules": "nextbest.cli.rules:rules",
    "report": "nextbest.cli.report:report",
    "build": "nextbest.cli.build:build",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nextbest")
def cli() -> None:
    """nextbest: decide the next best action for each customer."""


def _quiet_library_warnings() -> None:
    """Feast, ibis and MLflow warn about experimental and deprecated internals users cannot act on."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*experimental.*")
    logging.getLogger("feast").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # MLflow configures its loggers when imported
    # Some libraries reset the warning filters when imported: drop their warnings at display time too.
    show = warnings.showwarning

    def show_ours(message: Any, category: type[Warning], filename: str, *args: Any, **kwargs: Any) -> None:
        if "site-packages" not in filename:
            show(message, category, filename, *args, **kwargs)

    warnings.showwarning = show_ours


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user errors print one line and exit 2; a stack trace only with NEXTBEST_DEBUG=1."""
    debug = os.environ.get("NEXTBEST_DEBUG") == "1"
    if not debug:
        _quiet_library_warnings()
    try:
        code = cli.main(args=argv, standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
        return code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except NextbestError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:
        if debug:
            raise
        click.echo(f"error: {describe_validation_error(exc)}", err=True)
        sys.exit(2)
    except Exception as exc:
        if debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else ""
        click.echo(f"error: {type(exc).__name__}: {message} (set NEXTBEST_DEBUG=1 for details)", err=True)
        sys.exit(1)


def entry() -> None:
    """The console command (and ``python -m nextbest.cli``): ``main``, leaving after a reported error without
    finalising the interpreter. A native library's worker thread still alive at finalisation (a pool of
    pyarrow's, gRPC's or OpenMP's) can abort it with a second line on stderr, "terminate called without an
    active exception" (seen under load in CI), after the one-line error the user was promised. Every command's
    own cleanup (runs, clusters, temporary folders) is done by then in its context managers; only the streams
    and log handlers need flushing. A success exits as usual."""
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code == 0:
            raise
        import logging

        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
