"""Online feature retrieval of the decision FeatureService for one customer, in process.

Compares, in the same run and on the same customers:
  1. raw SQLite read of the same rows (every view table, values parsed): the floor;
  2. Feast ``get_online_features(FeatureService)`` (includes the python on-demand view);
  3. nextbest ``OnlineFeatureReader.read_one`` over that path (``feature_read: feature_service``: Feast plus
     freshness checks);
  4. nextbest ``OnlineFeatureReader.read_one`` as the service reads (``feature_read: direct``: the views
     through Feast's online store interface, request-time features by the on-demand view's own function,
     freshness checks; the same values as 3, see tests/integration/features/test_online_reads.py).

    python benchmarks/online_features.py [--customers 20000] [--reads 3000] [--home DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import build_world, measure, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--reads", type=int, default=3_000)
    parser.add_argument("--home", type=Path, default=None, help="Reuse a built home instead of a temp one.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from nextbest.core.features import DEFAULT_FEATURE_SERVICE, ENTITY, FEATURE_SERVICES, ON_DEMAND_VIEW, REQUEST_TS
    from nextbest.features.online import OnlineFeatureReader
    from nextbest.features.store import open_store
    from nextbest.settings import load_settings

    home = args.home or Path(tempfile.mkdtemp(prefix="nextbest-bench-"))
    if args.home is None:
        print(f"building a world of {args.customers:,} customers in {home} ...", flush=True)
        settings = build_world(home, args.customers)
    else:
        settings = load_settings(home=home)
    store = open_store(settings)
    reader = OnlineFeatureReader(store, DEFAULT_FEATURE_SERVICE, path="direct")
    generic = OnlineFeatureReader(store, DEFAULT_FEATURE_SERVICE, path="feature_service")
    service = store.get_feature_service(DEFAULT_FEATURE_SERVICE)
    ids = np.random.default_rng(0).integers(1, args.customers + 1, args.reads + 100)

    conn = sqlite3.connect(settings.feast_dir / "online.db", check_same_thread=False)
    views = [v for v in FEATURE_SERVICES[DEFAULT_FEATURE_SERVICE] if v != ON_DEMAND_VIEW]
    queries = [f'SELECT feature_name, value, event_ts FROM "nextbest_{v}" WHERE entity_key = ?' for v in views]
    version = store.config.entity_key_serialization_version

    def raw_read(i: int) -> dict[str, object]:
        key = EntityKey(join_keys=[ENTITY])
        key.entity_values.add().string_val = str(int(ids[i]))  # the entity is keyed by the canonical (string) id
        blob = serialize_entity_key(key, entity_key_serialization_version=version)
        out: dict[str, object] = {}
        for q in queries:
            for name, value, _ts in conn.execute(q, (blob,)):
                v = Value()
                v.ParseFromString(value)
                out[name] = v
        return out

    import time

    def feast_read(i: int) -> object:
        rows = [{ENTITY: str(int(ids[i])), REQUEST_TS: int(time.time())}]
        return store.get_online_features(features=service, entity_rows=rows).to_dict(include_event_timestamps=True)

    def generic_read(i: int) -> object:
        return generic.read_one(int(ids[i]))

    def direct_read(i: int) -> object:
        return reader.read_one(int(ids[i]))

    assert len(raw_read(0)) >= 30 and reader.read_one(int(ids[0])).found
    timings = [
        measure("raw SQLite read of the same rows", raw_read, args.reads),
        measure("Feast get_online_features(FeatureService)", feast_read, args.reads),
        measure("nextbest reader, Feast FeatureService path", generic_read, args.reads),
        measure("nextbest reader, direct path (the service's)", direct_read, args.reads),
    ]
    print(f"\nonline retrieval, 1 customer, {len(reader.features)} features, {args.reads:,} reads each")
    report(timings, "raw SQLite read of the same rows")


if __name__ == "__main__":
    main()
