"""Decision latency with the SQLite and the Redis online store, in the same run, on the same world and model.

One world is generated, materialized into both online stores (SQLite under ``--home``, Redis in a Feast
project of its own, deleted afterwards) and one model is trained and aliased ``@champion``. Then, per store,
in process and on the same customers:
  1. the online feature read alone (``OnlineFeatureReader.read_one``: Feast plus freshness checks);
  2. a whole decision (``DecisionRuntime.decide``: features, contact history, model, rules, arbitration and
     the write to the decision log: a new SQLite log for each store).
The two stores are timed in alternating blocks of calls, so both see the same machine load.
``--home`` keeps the built world and model for the next run.

    python benchmarks/online_store_latency.py [--customers 20000] [--n 2000] [--redis-url redis://...] [--home DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing, build_world, report


def in_blocks(names: list[str], fns: list[Callable[[int], object]], n: int, rounds: int = 5) -> list[Timing]:
    """Like ``_common.measure`` for several functions, timed in alternating blocks (A, B, A, B, ...) so all see
    the same machine load. Not call by call: Feast 0.67 keeps one process-wide cache of resolved feature
    references and clears it whenever a different store's registry is used, so switching stores on every
    call would cost each read ~10 ms of registry parsing. Each block starts with a few untimed calls."""
    out: list[list[float]] = [[] for _ in fns]
    per = -(-n // rounds)
    for r in range(rounds):
        for k, fn in enumerate(fns):
            for i in range(20):
                fn(r * per + i)
            for i in range(r * per, min(n, (r + 1) * per)):
                start = time.perf_counter()
                fn(i)
                out[k].append((time.perf_counter() - start) * 1000.0)
    return [Timing(name, np.asarray(samples)) for name, samples in zip(names, out, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--n", type=int, default=2_000, help="Timed calls per measurement.")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--home", type=Path, default=None, help="Build here instead of in a temp directory.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import mlflow
    import redis

    from nextbest.core.catalog import load_catalog
    from nextbest.features.store import apply, materialize
    from nextbest.serving.runtime import build_runtime
    from nextbest.serving.schemas import DecideRequest
    from nextbest.settings import load_settings
    from nextbest.training.config import BoosterParams, TrainConfig
    from nextbest.training.jobs import run_training

    redis.Redis.from_url(args.redis_url, socket_connect_timeout=3).ping()  # fail now, not after the build
    home = args.home or Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    built = home / "sqlite" / "built"
    if built.exists():
        print(f"reusing the world and model in {home}", flush=True)
    else:
        print(f"building a world of {args.customers:,} customers in {home} ...", flush=True)
        build_world(home / "sqlite", args.customers)
        world = load_settings(home=home / "sqlite")
        assert world.catalog_path is not None
        cfg = TrainConfig(learners=("s",), grid=(BoosterParams(num_leaves=15, min_child_samples=50, max_trees=300),))
        print("training the model ...", flush=True)
        outcome = run_training(world, load_catalog(world.catalog_path), cfg)
        mlflow.MlflowClient().set_registered_model_alias(cfg.model_name, "champion", str(outcome.version))
        built.write_text(f"{args.customers}\n")
    customers = int(built.read_text())

    # Per run: a Redis project, its registry, and an empty decision log for each side (contact-history reads
    # get slower as a log grows, so both start equal).
    run = home / "run"
    shutil.rmtree(run, ignore_errors=True)
    project = f"nbbench_{uuid.uuid4().hex[:10]}"
    local = load_settings(home=home / "sqlite", decision_log_url=f"sqlite:///{run / 'log-sqlite.db'}")
    on_redis = load_settings(
        home=run / "redis",
        data_dir=local.data_dir,
        environment="redis",
        redis_url=args.redis_url,
        feast_project=project,
        mlflow_tracking_uri=local.mlflow_tracking_uri,
        decision_log_url=f"sqlite:///{run / 'log-redis.db'}",
    )
    try:
        print(f"materializing into Redis (Feast project {project}) ...", flush=True)
        apply(on_redis)
        materialize(on_redis)
        runtimes = {"SQLite": build_runtime(local), "Redis": build_runtime(on_redis)}
        ids = [int(i) for i in np.random.default_rng(0).integers(1, customers + 1, args.n + 100)]
        for name, rt in runtimes.items():
            first = rt.decide(DecideRequest(customer_id=ids[0], channel="email"))
            assert not first.degraded, f"{name}: {first.reason}"

        names = list(runtimes)
        readers = [rt.backends.features for rt in runtimes.values()]
        reads = in_blocks(
            [f"{name}: online feature read" for name in names],
            [lambda i, r=r: r.read_one(ids[i]) for r in readers],
            args.n,
        )
        requests = [DecideRequest(customer_id=c, channel="email") for c in ids]
        decisions = in_blocks(
            [f"{name}: decision" for name in names],
            [lambda i, rt=rt: rt.decide_body(requests[i]) for rt in runtimes.values()],
            args.n,
        )

        features = len(runtimes["SQLite"].backends.features.features)
        print(f"\n{customers:,} customers, {features} features, {args.n:,} calls each, in process")
        report(reads, reads[0].name)
        print()
        report(decisions, decisions[0].name)
        print("\nRedis / SQLite:")
        for (sq, rd), what in ((reads, "feature read"), (decisions, "decision")):
            print(f"  {what:<14} p50 {rd.p50 / sq.p50:5.2f}x   p99 {rd.p99 / sq.p99:5.2f}x")
        for rt in runtimes.values():
            rt.backends.log.close()
    finally:
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        print(f"\ndeleted {len(keys):,} Redis keys of project {project}")


if __name__ == "__main__":
    main()
