"""A real, tiny file system that fills up: a tmpfs mounted for one test (needs root, as CI and this machine run).

Outside CI, where mounting is not allowed, tests using it skip and say so; under ``CI=true`` they fail instead
(a full disk is a case the hardening acceptance requires to be tested for real)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk_at(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted at a fresh directory under ``tmp_path``, unmounted afterwards (the ``small_disk``
    fixture of tests/conftest.py)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs (run as root to test a full disk): {done.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
