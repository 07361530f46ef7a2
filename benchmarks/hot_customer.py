"""A customer with a long history decides as fast as a fresh one (issue 14, item 7).

One customer has ``--history`` decisions (10,000) logged over the last 29 days of the contact-history window,
as a web channel asking on every page view would log them: mostly contacts over the 20-action catalog's
channels, some ``no_action``, feedback on about a third (impressions, clicks, conversions, dismissals),
inserted through ``DecisionLog.record_decision`` / ``record_feedback`` (so the log's history summaries are
maintained as the service maintains them). Then, in the same run, interleaved (each round times every path
once, so load from other processes hits all of them alike), ``DecisionRuntime.decide_body`` (everything
``POST /decide`` does besides HTTP) for:
  1. that hot customer;
  2. a fresh customer (a different customer of the world each round, never decided before);
  3. (``--old-rounds``, a shorter phase after) the hot customer with the previous history read, every
     contact row of the window read and scanned in Python (``contacts()`` + ``HistoryBuilder.build``),
     against fresh customers again: the before figure.
Target: the hot customer's p50 within 1.5x of the fresh one's (p99 reported beside it). The history map of
the hot customer is checked to be identical both ways before timing.

    python benchmarks/hot_customer.py [--history 10000] [--rounds 2000] [--old-rounds 200]
                                      [--postgres postgresql://...] [--customers 10000] [--home DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing
from _decision_world import settings_with_fresh_log, world_from_args
from decision_inprocess import interleaved

TARGET_RATIO = 1.5
FEEDBACK = (("impression", 0.6), ("click", 0.15), ("dismissed", 0.2), ("conversion", 0.05))


def fill(runtime: Any, customer: str, n: int, now: float, seed: int = 0) -> dict[str, int]:
    """Log ``n`` decisions of ``customer`` spread over the 29 days before ``now``, cloned from a real decision
    of the runtime (its features, scores and response, so rows have a real decision's size)."""
    from nextbest.io.decision_log import FeedbackRecord
    from nextbest.serving.schemas import DecideRequest

    log, catalog = runtime.backends.log, runtime.components.snapshot().policy.catalog
    body = runtime.decide_body(DecideRequest(customer_id=customer, channel="any"))
    template = log.get(body["decision_id"])
    rng = random.Random(seed)
    channels = ["web"] * 3 + list(catalog.channels)  # the page views' own channel most often
    kinds, weights = zip(*FEEDBACK, strict=True)
    stats = {"decisions": 0, "contacts": 0, "feedback": 0}
    for _ in range(n):
        action = catalog.control if rng.random() < 0.15 else rng.choice(catalog.treatments)
        channel = rng.choice(channels)
        at = now - rng.uniform(60.0, 29 * 86_400.0)
        rec = replace(
            template,
            decision_id=uuid.uuid4().hex,
            created_at=at,
            channel=channel,
            action=action,
            action_channel=catalog.delivery_channel(channel, action),
        )
        log.record_decision(rec)
        stats["decisions"] += 1
        stats["contacts"] += action != catalog.control
        if action != catalog.control and rng.random() < 0.35:
            for kind in {rng.choices(kinds, weights)[0] for _ in range(rng.choice((1, 1, 2)))}:
                fb = FeedbackRecord(uuid.uuid4().hex, rec.decision_id, customer, at + rng.uniform(5, 7_200), kind)
                log.record_feedback(fb)  # type: ignore[arg-type]
                stats["feedback"] += 1
    return stats


def full_read(log: Any) -> Any:
    """The history read before the bounded one (a stand-in for ``log.history``): every contact row of the
    window, built in Python."""

    def history(customer_id: str, builder: Any, now: float, *, since: float, delivered_only: bool) -> Any:
        rows = log.contacts(customer_id, since, delivered_only=delivered_only)
        return builder.build(rows, int(now)) if rows else None

    return history


def table(by: dict[str, Timing], hot: str, fresh: str) -> tuple[float, float]:
    print(f"{'':<58}{'p50 ms':>9}{'p99 ms':>9}")
    for name in (hot, fresh):
        print(f"{name:<58}{by[name].p50:>9.3f}{by[name].p99:>9.3f}")
    r50, r99 = by[hot].p50 / by[fresh].p50, by[hot].p99 / by[fresh].p99
    print(f"{'hot / fresh':<58}{r50:>8.2f}x{r99:>8.2f}x")
    return r50, r99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, default=10_000, help="Decisions logged for the hot customer.")
    parser.add_argument("--rounds", type=int, default=2_000, help="Timed rounds (hot and fresh once each).")
    parser.add_argument("--old-rounds", type=int, default=200, help="Rounds with the previous read (0: skip).")
    parser.add_argument("--postgres", default=None, help="Log to this PostgreSQL server instead of SQLite.")
    args, home, world = world_from_args(parser)

    from nextbest.serving.runtime import build_runtime, freeze_startup_objects
    from nextbest.serving.schemas import DecideRequest

    settings = settings_with_fresh_log(home, world, "hot-")
    prefix = f"hot{uuid.uuid4().hex[:8]}_"
    if args.postgres:
        sep = "&" if "?" in args.postgres else "?"
        settings = settings.model_copy(update={"decision_log_url": f"{args.postgres}{sep}table_prefix={prefix}"})
    runtime = build_runtime(settings)
    try:
        run(runtime, args, world, DecideRequest, freeze_startup_objects)
    finally:
        runtime.backends.log.close()
        if args.postgres:
            import psycopg

            from nextbest.io.decision_log.history import drop_statements

            with psycopg.connect(args.postgres, autocommit=True) as conn:
                for sql in drop_statements(prefix):
                    conn.execute(sql)


def run(runtime: Any, args: argparse.Namespace, world: dict[str, Any], request: Any, freeze: Any) -> None:
    log, serving = runtime.backends.log, runtime.settings.serving
    snap = runtime.components.snapshot()
    n_customers = int(world["customers"])
    hot = "1"
    now = time.time()
    print(f"logging {args.history:,} decisions of customer {hot} ({log.url.split('?')[0]}) ...", flush=True)
    started = time.perf_counter()
    stats = fill(runtime, hot, args.history, now)
    print(
        f"  {stats['decisions']:,} decisions ({stats['contacts']:,} contacts), {stats['feedback']:,} feedback "
        f"events in {time.perf_counter() - started:.1f} s"
    )
    if args.postgres:  # statistics, as autovacuum keeps them on a log in service (the tables are new here)
        import psycopg

        with psycopg.connect(args.postgres, autocommit=True) as conn:
            for name in (*log.tables, *(log.history_names[k] for k in ("events", "counts", "latest"))):
                conn.execute(f"ANALYZE {name}")
    since = now - serving.history_days * 86_400
    delivered = serving.contacts_from == "feedback"
    summary = log.history(hot, snap.policy.history, now, since=since, delivered_only=delivered)
    full = snap.policy.history.build(log.contacts(hot, since, delivered_only=delivered), int(now))
    assert summary == full, "the bounded read differs from the full-row build"
    print(
        f"  history identical both ways: contacts_30d={full['contacts_30d']}, ignored_streak="
        f"{full['ignored_streak']} (contacts from {serving.contacts_from})"
    )

    rng = np.random.default_rng(0)
    total = args.rounds + args.old_rounds + 200
    fresh_ids = [str(c) for c in rng.permutation(np.arange(2, n_customers + 1))[:total]]  # each decided once
    assert len(fresh_ids) == total, "--customers too small for the rounds"
    first = runtime.decide_body(request(customer_id=hot, channel="any"))
    assert not first["degraded"], first.get("reason")
    freeze()
    fresh_iter = iter(fresh_ids)

    def hot_decide(_: int) -> object:
        return runtime.decide_body(request(customer_id=hot, channel="any"))

    def fresh_decide(_: int) -> object:
        return runtime.decide_body(request(customer_id=next(fresh_iter), channel="any"))

    names = (f"hot customer ({args.history:,} decisions logged)", "fresh customer (none)")
    load = os.getloadavg()[0]
    wall, cpu = interleaved({names[0]: hot_decide, names[1]: fresh_decide}, args.rounds, warmup=50)
    print(
        f"\nDecisionRuntime.decide_body, 20 candidates, {args.rounds:,} rounds each timing both once (load average "
        f"{load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print("\nwall time")
    r50, r99 = table(wall, *names)
    print("\nthread CPU time (without the time other processes held the cores)")
    c50, c99 = table(cpu, *names)

    if args.old_rounds:
        bounded = log.history
        log.history = full_read(log)  # this instance only: the previous read, for the before figure
        try:
            old = (f"hot customer, previous read (every row, {args.history:,}+)", "fresh customer, previous read")
            wall_old, _ = interleaved({old[0]: hot_decide, old[1]: fresh_decide}, args.old_rounds, warmup=5)
        finally:
            log.history = bounded
        print(f"\nbefore: the previous history read, {args.old_rounds:,} rounds (wall time)")
        table(wall_old, *old)

    verdict = "PASS" if r50 <= TARGET_RATIO else "FAIL"
    print(
        f"\n{verdict}: the hot customer decides in {r50:.2f}x the fresh one's time at p50 ({r99:.2f}x at p99; CPU "
        f"time {c50:.2f}x and {c99:.2f}x); target <= {TARGET_RATIO}x"
    )


if __name__ == "__main__":
    main()
