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


def test_serve_fails_fast_when_its_port_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["serve", "--port", str(port)], tmp_path)
    assert_one_line_error(result, f"port {port}", "already in use")


def test_serve_on_the_network_needs_a_key_or_insecure(tmp_path: Path) -> None:
    result = run_cli(["serve", "--host", "0.0.0.0", "--port", "1"], tmp_path)
    assert_one_line_error(result, "no API key is set", "--insecure")


def test_a_launcher_refuses_a_service_it_did_not_start(tmp_path: Path) -> None:
    """make demo and simulate-loop check the instance id in /ready: another service on the port is an error."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from nextbest.cli.walkthrough import wait_ready
    from nextbest.errors import UnavailableError

    class Other(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"ready": True, "details": {"instance_id": "someone-else"}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(UnavailableError, match="another service answers"):
            wait_ready(base, None, timeout=10, instance_id="mine")
        assert wait_ready(base, None, timeout=10, instance_id="someone-else") >= 0
    finally:
        server.shutdown()
