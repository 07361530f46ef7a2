"""Bad input on the command line: one line naming the problem, a non-zero exit, never a stack trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nextbest.settings import Settings


def run_cli(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "NEXTBEST_HOME": str(home), **env}
    environ.pop("NEXTBEST_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "nextbest.cli", *args], capture_output=True, text=True, env=environ, timeout=120
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def test_missing_data_directory(tmp_path: Path) -> None:
    result = run_cli(["features", "apply"], tmp_path, NEXTBEST_DATA_DIR=str(tmp_path / "nowhere"))
    assert_one_line_error(result, "data directory", "nowhere", "does not exist")


def test_unknown_customer(settings: Settings, feature_store: Any) -> None:
    result = run_cli(["features", "show", "987654321"], settings.home, NEXTBEST_DATA_DIR=str(settings.data_dir))
    assert_one_line_error(result, "customer 987654321")


@pytest.mark.parametrize(
    ("event", "needles"),
    [
        ("{not json", ("not valid JSON",)),
        (
            '{"type": "ticket_opened", "customer_id": 1, "timestamp": "2026-01-01T00:00:00", "ticket_id": 3}',
            ("severity", "Field required"),
        ),
        ('{"type": "volcano", "customer_id": 1}', ("type", "volcano")),
    ],
)
def test_malformed_event(tmp_path: Path, event: str, needles: tuple[str, ...]) -> None:
    assert_one_line_error(run_cli(["features", "push", event], tmp_path), *needles)


def test_invalid_option_and_settings(tmp_path: Path) -> None:
    assert_one_line_error(run_cli(["data", "generate", "--customers", "5"], tmp_path), "customers", "5")
    bad_env = run_cli(["data", "generate"], tmp_path, NEXTBEST_ENVIRONMENT="mars")
    assert_one_line_error(bad_env, "environment")
