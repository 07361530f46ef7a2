"""One decision over 20 candidate actions, in process, against the sum of its own parts.

Measured in the same run, interleaved (each round times every path once, on different random customers, so
load from other processes hits all of them alike):
  1. online feature read: nextbest ``OnlineFeatureReader.read_one`` (Feast + freshness checks);
  2. raw model predict: LightGBM ``Booster.predict`` of the champion's boosters on the 20 candidate rows,
     matrices prepared beforehand (the conversion head and the order-value head);
  3. ``DecisionRuntime.decide_body``: features, contact history, scores, rules, arbitration, exploration, the
     response body and the decision-log write (a new SQLite log), i.e. everything ``POST /decide`` does besides
     HTTP (with the start-up objects frozen out of the garbage collector, as the service does).
Target: (3) adds at most 0.5 ms p50 beyond (1) + (2).

    python benchmarks/decision_inprocess.py [--customers 10000] [--decisions 3000] [--home DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing
from _decision_world import settings_with_fresh_log, world_from_args

TARGET_MS = 0.5
Timings = dict[str, Timing]


def interleaved(paths: dict[str, Callable[[int], object]], n: int, warmup: int = 100) -> tuple[Timings, Timings]:
    """Time every ``fn(i)`` of ``paths`` once per round, n rounds: per-call wall and thread-CPU milliseconds.
    CPU time leaves out the time this thread waited while other processes ran (the machine is shared)."""
    for i in range(warmup):
        for fn in paths.values():
            fn(i)
    wall = {name: np.empty(n) for name in paths}
    cpu = {name: np.empty(n) for name in paths}
    for i in range(n):
        for name, fn in paths.items():
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            fn(warmup + i)
            w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
            wall[name][i], cpu[name][i] = (w1 - w0) / 1e6, (c1 - c0) / 1e6
    return ({k: Timing(k, v) for k, v in wall.items()}, {k: Timing(k, v) for k, v in cpu.items()})


def table(by: Timings, read: str, predict: str, decide: str) -> float:
    """Print the parts, their sum, the decision and what it adds; returns the added p50."""
    parts50, parts99 = by[read].p50 + by[predict].p50, by[read].p99 + by[predict].p99
    print(f"{'':<50}{'p50 ms':>9}{'p99 ms':>9}")
    for name in (read, predict):
        print(f"{name:<50}{by[name].p50:>9.3f}{by[name].p99:>9.3f}")
    print(f"{'sum of parts':<50}{parts50:>9.3f}{parts99:>9.3f}")
    print(f"{decide:<50}{by[decide].p50:>9.3f}{by[decide].p99:>9.3f}")
    added = by[decide].p50 - parts50
    print(f"{'added by nextbest (decide - sum of parts)':<50}{added:>9.3f}{by[decide].p99 - parts99:>9.3f}")
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=3_000)
    args, home, world = world_from_args(parser)

    from nextbest.serving.runtime import build_runtime, freeze_startup_objects
    from nextbest.serving.schemas import DecideRequest

    settings = settings_with_fresh_log(home, world, "inprocess-")  # a fresh decision log for every run
    runtime = build_runtime(settings)
    snap = runtime.components.snapshot()
    model, policy, reader = snap.model.model, snap.policy, runtime.backends.features
    assert model is not None and reader is not None, snap.model.error
    cands = policy.candidates("any")
    assert len(cands) == 20 and set(cands) <= set(model.action_ids), cands

    n = args.decisions + 100
    rng = np.random.default_rng(0)
    ids = {k: rng.integers(1, world["customers"] + 1, n).tolist() for k in ("read", "predict", "decide")}
    # Raw predict inputs, built beforehand from each customer's served features (not timed).
    conv, value = model.conversion.boosters["all"], model.value.booster
    assert model.conversion.descriptors is not None and value is not None
    value_inputs, _ = model.value._distinct(cands)  # (action code, discount) once per distinct pair, as served
    matrices = []
    for c in ids["predict"]:
        X = model.encoder.transform_records([reader.read_one(c).values])
        stacked = model.conversion.descriptors.design(
            np.tile(X, (len(cands), 1)), np.array([model.action_ids.index(a) for a in cands])
        )
        matrices.append((stacked, np.hstack([np.tile(X, (len(value_inputs), 1)), value_inputs])))
    first = runtime.decide(DecideRequest(customer_id=ids["decide"][0], channel="any"))
    assert not first.degraded and len(first.candidates) == 20, first.reason
    freeze_startup_objects()  # as the service does after start-up

    def read(i: int) -> object:
        return reader.read_one(ids["read"][i])

    def predict(i: int) -> object:
        stacked, valued = matrices[i]
        return conv.predict(stacked, num_threads=1), value.predict(valued, num_threads=1)

    def decide(i: int) -> object:
        return runtime.decide_body(DecideRequest(customer_id=ids["decide"][i], channel="any"))

    names = {
        "read": "online feature read (OnlineFeatureReader)",
        "predict": "raw model predict, 20 rows (Booster.predict)",
        "decide": "nextbest decide (DecisionRuntime.decide_body)",
    }
    paths = {names["read"]: read, names["predict"]: predict, names["decide"]: decide}
    load = os.getloadavg()[0]
    wall, cpu = interleaved(paths, args.decisions)
    print(
        f"\none decision over {len(cands)} candidates, {len(reader.features)} features, champion "
        f"v{snap.model.version}; {args.decisions:,} rounds, each timing every path once (load average "
        f"{load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print("\nwall time (p99 of the sum: sum of the p99s)")
    added = table(wall, *names.values())
    print("\nthread CPU time (without the time other processes held the cores)")
    added_cpu = table(cpu, *names.values())
    verdict = "PASS" if added <= TARGET_MS else "FAIL"
    print(f"\n{verdict}: decide adds {added:.3f} ms p50 (wall) beyond the sum of its parts (target <= {TARGET_MS} ms)")
    print(f"      ({added_cpu:.3f} ms p50 in CPU time)")


if __name__ == "__main__":
    main()
