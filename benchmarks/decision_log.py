"""What logging a decision costs, on SQLite and PostgreSQL in the same run.

Per backend, on a log already holding ``--history`` decisions (with feedback) and the same payload a real
decision logs (45 features, 20 scored candidates, suppressions, the full response body):
  1. a bare INSERT of that record as one JSON document with the raw driver (the floor: what any durable log
     must pay: serialise, send, commit);
  2. ``record_decision`` (four JSON columns, UNIQUE request_id, three indexes) and a replayed request_id;
  3. ``history()``, the contact-history read each decision makes (bounded: the summaries the log keeps), the
     full-row ``contacts()`` for comparison, and record + history together (a decision's cost);
  4. ``record_feedback``;
then 8 threads each deciding (record + history) at once: per-call latency and decisions/s, with SQLite's
writers taking a lock in Python (the default) and with SQLite's busy handler alone, to show why the lock.

    python benchmarks/decision_log.py [--n 3000] [--history 10000] [--postgres-url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing, measure, report

from nextbest.core.contact import HistoryBuilder
from nextbest.io.decision_log import DecisionLog, DecisionRecord, FeedbackRecord, open_decision_log

NOW = 1_795_000_000.0
ACTIONS = [f"action_{i:02d}" for i in range(19)] + ["no_action"]
CHANNELS = ["email", "sms", "push", "web", "app"]
BUILDER = HistoryBuilder(tuple(CHANNELS))  # what a decision builds its contact history with


def payload(rng: random.Random) -> dict[str, object]:
    features = {f"feature_{i:02d}": round(rng.random() * 100, 3) for i in range(40)}
    features.update(tier="gold", region="north", app_user=1, open_tickets=0, email_opt_in=1)
    candidates = [
        {"action": a, "rank": r, "eligible": True, "propensity": rng.random() / 5, "uplift": rng.random() / 50,
         "value": 60.0, "cost": 0.01, "lever": 1.0, "net_value": rng.random()}
        for r, a in enumerate(ACTIONS, 1)
    ]  # fmt: skip
    suppressed = [{"action": "discount_20", "rule_ids": ["no_promo_open_ticket"],
                   "messages": ["No promotional offer while a service ticket is open."]}]  # fmt: skip
    return {"features": features, "candidates": candidates, "suppressed": suppressed}


def record(customer_id: int, at: float, rng: random.Random, body: dict[str, object], request_id: str | None = None):
    action = rng.choice(ACTIONS)
    decision_id = uuid.uuid4().hex
    response = {"decision_id": decision_id, "request_id": request_id, "customer_id": customer_id, "action": action,
                "channel": "email", "probability": 0.95, "candidates": body["candidates"],
                "suppressed": body["suppressed"], "shadow": [], "model_version": "7", "degraded": False}  # fmt: skip
    return DecisionRecord(
        decision_id, request_id, customer_id, at, "email", action, rng.choice(CHANNELS), 0.95, False, False, False,
        None, "7", "rules-1a2b", "2026.11", "nba_v1", body["features"], body["candidates"],  # type: ignore[arg-type]
        body["suppressed"], response,  # type: ignore[arg-type]
    )  # fmt: skip


def fill(log: DecisionLog, rows: int, customers: int, rng: random.Random, body: dict[str, object]) -> None:
    for i in range(rows):
        rec = record(rng.randrange(customers), NOW - 30 * 86_400 + i * 30 * 86_400 / rows, rng, body)
        log.record_decision(rec)
        if rng.random() < 0.5:
            kind = rng.choice(["impression", "click", "conversion", "dismissed"])
            log.record_feedback(FeedbackRecord(uuid.uuid4().hex, rec.decision_id, rec.customer_id,
                                               rec.created_at + 60, kind, None, {}))  # type: ignore[arg-type]  # fmt: skip


def floor(url: str, tag: str) -> tuple[object, str]:
    """A raw connection with the log's own settings and a one-column JSON table."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url[len("sqlite:///") :].split("?")[0], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"CREATE TABLE {tag}floor (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        return conn, f"INSERT INTO {tag}floor VALUES (?, ?)"
    import psycopg

    pg = psycopg.connect(url.split("?")[0], autocommit=True)
    pg.execute(f"CREATE TABLE {tag}floor (id TEXT PRIMARY KEY, body JSONB NOT NULL)")
    return pg, f"INSERT INTO {tag}floor VALUES (%s, %s)"


def single(name: str, url: str, args: argparse.Namespace, tag: str) -> list[Timing]:
    rng = random.Random(7)
    body = payload(rng)
    log = open_decision_log(url)
    fill(log, args.history, args.customers, rng, body)
    conn, insert = floor(url, tag)
    recs = [record(rng.randrange(args.customers), NOW + i, rng, body, f"r{i}") for i in range(args.n + 50)]
    who = [rng.randrange(args.customers) for _ in range(args.n + 50)]
    since = NOW - 30 * 86_400
    # measure() calls fn(0..49) to warm up and then fn(0..n-1): records that must be new come from iterators.
    for_floor, for_log, for_feedback = iter(recs), iter(recs), iter(recs[::-1])
    others = iter([record(rng.randrange(args.customers), NOW + i, rng, body) for i in range(args.n + 50)])

    def bare_insert(_: int) -> None:
        r = next(for_floor)
        conn.execute(insert, (r.decision_id, json.dumps(r.__dict__, separators=(",", ":"))))  # type: ignore[attr-defined]

    def decide(_: int) -> None:
        r = next(others)
        log.record_decision(r)
        log.history(r.customer_id, BUILDER, NOW, since=since)

    def feedback(_: int) -> None:
        r = next(for_feedback)
        log.record_feedback(FeedbackRecord(uuid.uuid4().hex, r.decision_id, r.customer_id, NOW + 60, "click"))

    out = [
        measure(f"{name}: bare INSERT of the JSON (floor)", bare_insert, args.n),
        measure(f"{name}: record_decision", lambda _: log.record_decision(next(for_log)), args.n),
        measure(f"{name}: record_decision, replayed request", lambda i: log.record_decision(recs[i]), args.n),
        measure(f"{name}: history() (30 days)", lambda i: log.history(who[i], BUILDER, NOW, since=since), args.n),
        measure(f"{name}: contacts(), every row (30 days)", lambda i: log.contacts(who[i], since), args.n),
        measure(f"{name}: record_decision + history()", decide, args.n),
        measure(f"{name}: record_feedback", feedback, args.n),
    ]
    size = len(json.dumps(recs[0].__dict__))
    per = np.mean([len(log.contacts(c, since)) for c in who[:200]])
    print(f"{name}: {size:,} bytes of JSON per decision, {per:.1f} contact rows per customer read")
    conn.close()  # type: ignore[attr-defined]
    log.close()
    return out


def contended(name: str, log: DecisionLog, args: argparse.Namespace, threads: int = 8) -> Timing:
    rng = random.Random(11)
    body = payload(rng)
    per = args.n // threads
    work = [[record(rng.randrange(args.customers), NOW + i, rng, body) for i in range(per)] for _ in range(threads)]
    samples: list[float] = []
    lock = threading.Lock()
    since = NOW - 30 * 86_400

    def run(mine: list[DecisionRecord]) -> None:
        local = []
        for rec in mine:
            start = time.perf_counter()
            log.record_decision(rec)
            log.history(rec.customer_id, BUILDER, NOW, since=since)
            local.append((time.perf_counter() - start) * 1000.0)
        with lock:
            samples.extend(local)

    pool = [threading.Thread(target=run, args=(w,)) for w in work]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    print(f"{name}: {len(samples) / elapsed:,.0f} decisions/s, slowest call {max(samples):.1f} ms")
    log.close()
    return Timing(name, np.asarray(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3_000, help="Timed calls per measurement.")
    parser.add_argument("--history", type=int, default=10_000, help="Decisions in the log before timing.")
    parser.add_argument("--customers", type=int, default=1_000)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    tag = f"bench{uuid.uuid4().hex[:8]}_"
    pg = f"{args.postgres_url}{'&' if '?' in args.postgres_url else '?'}table_prefix={tag}"
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{tmp}/decisions.db"
        try:
            print(f"{args.history:,} decisions logged before timing, {args.customers:,} customers, {args.n:,} calls\n")
            for name, url in (("SQLite", sqlite), ("PostgreSQL", pg)):
                report(single(name, url, args, tag), f"{name}: bare INSERT of the JSON (floor)")
                print()
            from nextbest.io.decision_log.sqlite import SqliteDecisionLog

            print("8 threads, each record_decision + history() per call:")
            loads = [
                contended("SQLite, writers take a lock (default)", SqliteDecisionLog(f"{tmp}/c1.db"), args),
                contended("SQLite, busy handler only", SqliteDecisionLog(f"{tmp}/c2.db", write_lock=False), args),
                contended("PostgreSQL, connection per thread", open_decision_log(pg.replace(tag, tag + "c")), args),
            ]
            report(loads, loads[0].name)
        finally:
            import psycopg

            from nextbest.io.decision_log.history import drop_statements

            with psycopg.connect(args.postgres_url, autocommit=True) as conn:
                for t in (tag, tag + "c"):
                    conn.execute(f"DROP TABLE IF EXISTS {t}floor")
                    for sql in drop_statements(t):  # the log's tables, its history summaries and their triggers
                        conn.execute(sql)


if __name__ == "__main__":
    main()
