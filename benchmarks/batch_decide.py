"""Batch decisioning with inline features (no Feast lookups): customers per second through the core of
``nextbest decide-batch``, and the CLI end to end.

The input file holds ``--rows`` customers with every model feature as a column (the served features of the
world's customers, repeated under new customer ids), 20 candidate actions each (channel ``any`` of the 20-action
catalog variant). Measured:
  1. the core, in process: ``nextbest.serving.batch.run_batch`` (encode, score, rules, arbitration, exploration,
     explanations), median of ``--repeat`` runs; "deciding" excludes building the output frame;
  2. ``nextbest decide-batch --input ... --output ...`` as a subprocess: process start, imports, model load,
     reading the parquet input, deciding, reading contact histories from and recording every decision in a
     fresh decision log, and writing the parquet output;
  3. the decision log's share, on ``--log-rows`` customers: contact histories read per customer (a fresh log,
     then the same customers again once the first batch's sends are in it) and every decision recorded in bulk,
     per customer against the cost of deciding (SQLite, the embedded default; ``--postgres-url`` adds
     PostgreSQL).
Target: the core decides >= 20,000 customers/s.

    python benchmarks/batch_decide.py [--rows 100000] [--log-rows 20000] [--postgres-url URL] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _decision_world import world_from_args

TARGET = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="Customers in the batch.")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--log-rows", type=int, default=20_000, help="Customers of the decision-log measurement.")
    parser.add_argument("--postgres-url", default=None, help="Also measure the log on this PostgreSQL database.")
    args, home, world = world_from_args(parser)

    import pandas as pd

    from nextbest.core.features import DEFAULT_FEATURE_SERVICE
    from nextbest.features.online import OnlineFeatureReader
    from nextbest.features.store import open_store
    from nextbest.io.decision_log import open_decision_log
    from nextbest.serving.batch import DecisionLogUse, inline_features, read_customers, run_batch
    from nextbest.serving.components import Components
    from nextbest.serving.inputs import feast_features
    from nextbest.serving.models import load_model_ref
    from nextbest.settings import load_settings

    settings = load_settings(home=home, catalog_path=Path(world["catalog"]))
    work = Path(tempfile.mkdtemp(prefix="batch-", dir=home))

    # The input: every served feature as a column, numeric columns numeric (as a user's file would be).
    reader = OnlineFeatureReader(open_store(settings), DEFAULT_FEATURE_SERVICE)
    served = pd.DataFrame(feast_features(reader, list(range(1, world["customers"] + 1)), time.time()))
    for name in served.columns:
        converted = pd.to_numeric(served[name], errors="coerce")
        if converted.notna().sum() == served[name].notna().sum():
            served[name] = converted
    frame = served.iloc[np.arange(args.rows) % len(served)].reset_index(drop=True)
    frame.insert(0, "customer_id", np.arange(1, args.rows + 1))
    source = work / "customers.parquet"
    frame.to_parquet(source)

    # 1. The core, as the CLI calls it.
    model = load_model_ref(settings, None)
    policy = Components(settings, load_model=False).policy
    candidates = policy.candidates("any")
    assert len(candidates) == 20 and set(candidates) <= set(model.action_ids), candidates
    table = read_customers(source)
    features = inline_features(table, model)
    runs = []
    for _ in range(args.repeat):
        result = run_batch(policy, model, table, features, "any")
        runs.append((result.decide_seconds, result.seconds))
    decide_s = statistics.median(r[0] for r in runs)
    total_s = statistics.median(r[1] for r in runs)
    assert len(result.frame) == args.rows

    # 2. The CLI end to end.
    out = work / "decisions.parquet"
    env = {**os.environ, "NEXTBEST_HOME": str(home), "NEXTBEST_CATALOG_PATH": world["catalog"],
           "NEXTBEST_DECISION_LOG_URL": f"sqlite:///{work / 'cli-decisions.db'}"}  # fmt: skip
    cli = [str(Path(sys.executable).with_name("nextbest")), "decide-batch", "--input", str(source), "--output",
           str(out), "--channel", "any"]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=600)
    cli_s = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"nextbest decide-batch failed:\n{done.stdout}\n{done.stderr}")
    said = re.search(r"\(([\d,]+)\s+customers/s\s+deciding\)", done.stdout)  # rich may wrap
    cli_rate = float(said.group(1).replace(",", "")) if said else float("nan")
    written = pd.read_parquet(out, columns=["customer_id", "action"])
    assert len(written) == args.rows
    same = (written["action"].to_numpy() == result.frame["action"].to_numpy()).mean()

    # 3. The decision log's share (start-up objects frozen out of the collector, as the CLI does).
    from nextbest.serving.runtime import freeze_startup_objects

    freeze_startup_objects()
    m = min(args.log_rows, args.rows)
    sub = table.iloc[:m].reset_index(drop=True)
    sub_features = {k: v[:m] for k, v in features.items()}
    logs = {"SQLite": f"sqlite:///{work / 'decisions.db'}"}
    if args.postgres_url:
        logs["PostgreSQL"] = f"{args.postgres_url}?table_prefix=bench_batch_{os.getpid()}_"
    log_rows: list[tuple[str, float, float, float, float]] = []
    for name, url in logs.items():
        with open_decision_log(url) as log:
            use = DecisionLogUse(log, settings.serving, "inline")
            first = run_batch(policy, model, sub, sub_features, "any", log=use)
            assert first.recorded == m, (first.recorded, m)
            again = run_batch(  # the same customers, whose sends are now in the log; plans only
                policy, model, sub, sub_features, "any", log=DecisionLogUse(log, settings.serving, "inline", False)
            )
            log_rows.append((name, first.decide_seconds, first.history_seconds, again.history_seconds,
                             first.record_seconds))  # fmt: skip
            if name == "PostgreSQL":
                import psycopg

                from nextbest.io.decision_log.history import drop_statements

                with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                    for sql in drop_statements(f"bench_batch_{os.getpid()}_"):
                        conn.execute(sql)

    n = args.rows
    print(
        f"\nbatch decisioning, {n:,} customers x {len(candidates)} candidate actions, features inline, "
        f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'path':<60}{'seconds':>9}{'customers/s':>13}")
    label = f"core run_batch, deciding (median of {args.repeat})"
    print(f"{label:<60}{decide_s:>9.2f}{n / decide_s:>13,.0f}")
    print(f"{'core run_batch, with the output frame':<60}{total_s:>9.2f}{n / total_s:>13,.0f}")
    print(f"{'nextbest decide-batch CLI, its deciding figure':<60}{'':>9}{cli_rate:>13,.0f}")
    print(f"{'nextbest decide-batch CLI end to end (start, load, I/O)':<60}{cli_s:>9.2f}{n / cli_s:>13,.0f}")
    print(f"(same action as the core run for {same:.1%} of customers; exploration draws depend on the run time)")
    print(f"\nthe decision log's share, {m:,} customers, milliseconds per customer (x: against deciding)")
    print(f"{'log':<12}{'deciding':>10}{'history, fresh':>18}{'history, contacted':>22}{'recording':>16}")
    for name, dec, h0, h1, rec in log_rows:
        per = [x * 1000 / m for x in (dec, h0, h1, rec)]
        cells = [f"{v:.3f} ({v / per[0]:.1f}x)" for v in per[1:]]
        print(f"{name:<12}{per[0]:>10.3f}{cells[0]:>18}{cells[1]:>22}{cells[2]:>16}")
    rate = n / decide_s
    verdict = "PASS" if rate >= TARGET else "FAIL"
    print(f"\n{verdict}: the core decides {rate:,.0f} customers/s (target >= {TARGET:,})")


if __name__ == "__main__":
    main()
