"""The analytics page's report (`/analytics/data`, `nextbest report`) over a decision log, per decision.

A fresh SQLite log gets ``--decisions`` real decisions (20 candidates each, rules, exploration, control group)
and feedback on a share of them; then the report over the window is timed twice: as the service reads it (rule
ids from the ``rule_ids`` column) and, on a copy of the same log with that column emptied, as rows written
before the column existed are read (every decision's ``rule_hits`` JSON parsed). Same rows, same run, both
copies rewritten alike; the two reports must be equal.

    python benchmarks/analytics.py [--decisions 20000] [--home DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _decision_world import settings_with_fresh_log, world_from_args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=20_000)
    args, home, world = world_from_args(parser)

    from nextbest.io.decision_log import FeedbackRecord, open_decision_log
    from nextbest.serving.explorer_data import analytics
    from nextbest.serving.runtime import build_runtime
    from nextbest.serving.schemas import DecideRequest

    settings = settings_with_fresh_log(home, world, "analytics-")
    assert settings.decision_log_url is not None
    log_path = Path(settings.decision_log_url.removeprefix("sqlite:///"))
    work = log_path.parent
    runtime = build_runtime(settings)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for i, customer in enumerate(rng.integers(1, world["customers"] + 1, args.decisions).tolist()):
        body = runtime.decide_body(DecideRequest(customer_id=customer, channel="any"))
        if body["action"] != "no_action" and i % 3 == 0:
            kind = "conversion" if i % 9 == 0 else "impression"
            runtime.backends.log.record_feedback(
                FeedbackRecord(
                    f"fb-{i}", body["decision_id"], customer, time.time(), kind, 40.0 if kind == "conversion" else None
                )
            )
    print(f"{args.decisions:,} decisions logged in {time.perf_counter() - started:.1f} s")
    catalog = runtime.components.policy.catalog
    runtime.backends.log.close()

    old_path = work / "before-rule-ids.db"
    shutil.copy(log_path, old_path)
    # Both copies rewritten by one UPDATE, so they differ in the column's content only, not in page layout.
    for path, value in ((log_path, "rule_ids"), (old_path, "NULL")):
        with sqlite3.connect(path) as conn:
            conn.execute(f"UPDATE nextbest_decisions SET rule_ids = {value}")

    def timed(path: Path) -> tuple[float, dict[str, object]]:
        with open_decision_log(f"sqlite:///{path}") as log:
            best, report = float("inf"), None
            for _ in range(3):
                t0 = time.perf_counter()
                report = analytics(log, catalog, 7.0, until=time.time() + 60)
                best = min(best, time.perf_counter() - t0)
        assert report is not None
        data = report.as_dict()
        data.pop("window", None)
        return best, data

    new_s, new_report = timed(log_path)
    old_s, old_report = timed(old_path)
    assert new_report == old_report, "the two reads of the same decisions disagree"
    n = args.decisions
    print(f"\nanalytics report over {n:,} decisions (best of 3)")
    print(f"{'':<52}{'seconds':>9}{'µs per decision':>18}")
    print(f"{'rule ids from the rule_ids column (the service)':<52}{new_s:>9.2f}{new_s / n * 1e6:>18.1f}")
    print(f"{'rule_hits JSON parsed (rows from before the column)':<52}{old_s:>9.2f}{old_s / n * 1e6:>18.1f}")
    print(f"\nthe column makes the report {old_s / new_s:.1f}x faster; both reports are equal")


if __name__ == "__main__":
    main()
