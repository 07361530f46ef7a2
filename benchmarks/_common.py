"""Shared helpers for the benchmark scripts: percentiles, a table printer, a throw-away world."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Timing:
    name: str
    samples_ms: np.ndarray

    @property
    def p50(self) -> float:
        return float(np.percentile(self.samples_ms, 50))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.samples_ms, 99))

    @property
    def mean(self) -> float:
        return float(statistics.fmean(self.samples_ms))


def measure(name: str, fn: Callable[[int], object], n: int, warmup: int = 50) -> Timing:
    """Call ``fn(i)`` n times after a warm-up; per-call wall time in milliseconds."""
    for i in range(warmup):
        fn(i)
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out[i] = (time.perf_counter() - start) * 1000.0
    return Timing(name, out)


def report(timings: list[Timing], reference: str) -> None:
    ref = next(t for t in timings if t.name == reference)
    print(f"{'':<44}{'p50 ms':>10}{'p99 ms':>10}{'p50 / ' + reference[:14]:>22}")
    for t in timings:
        print(f"{t.name:<44}{t.p50:>10.3f}{t.p99:>10.3f}{t.p50 / ref.p50:>21.2f}x")


def build_world(home: Path, customers: int, seed: int = 7) -> object:
    """Generate, apply and materialize a world under ``home``; returns the settings."""
    from nextbest.core.catalog import load_catalog
    from nextbest.features.store import apply, materialize
    from nextbest.settings import load_settings
    from nextbest.world.config import WorldConfig
    from nextbest.world.generate import generate_world

    settings = load_settings(home=home)
    assert settings.data_dir is not None and settings.catalog_path is not None
    generate_world(WorldConfig(customers=customers, seed=seed), load_catalog(settings.catalog_path), settings.data_dir)
    apply(settings)
    materialize(settings)
    return settings
