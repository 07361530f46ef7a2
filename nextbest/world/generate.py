"""Generate a synthetic customer world and write it as parquet:

* ``raw/``: customers, orders, sessions, cart events, tickets, consent events, contacts, the campaign log;
* ``feature_tables/``: the Feast batch sources, one per feature view, with event timestamps;
* ``truth/``: the true response of every campaign row and of every customer at ``as_of`` to every action;
* ``manifest.json``: the config, the catalog version and row counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.core.catalog import ActionCatalog
from nextbest.core.features import ENTITY, VIEWS, all_fields, view
from nextbest.world.campaign import apply_consequences, run_campaign
from nextbest.world.config import WorldConfig
from nextbest.world.events import History, draw_history
from nextbest.world.outcome import TrueResponse, true_response
from nextbest.world.population import draw_population
from nextbest.world.state import StateComputer, with_request_features

SCHEMA_VERSION = 2  # 2: feature tables key customers by string id (raw and truth tables keep the integers)
SNAPSHOT_VIEWS = ("order_rfm", "engagement", "contact_history")
EVENT_VIEWS = ("cart", "service_tickets", "consents")


@dataclass(frozen=True)
class WorldPaths:
    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def feature_tables(self) -> Path:
        return self.root / "feature_tables"

    @property
    def truth(self) -> Path:
        return self.root / "truth"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def table(self, view_name: str) -> Path:
        return self.feature_tables / f"{view(view_name).table}.parquet"


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(
        np.asarray(seconds, dtype="datetime64[s]").astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC")
    )


def _column(name: str, values: np.ndarray) -> pa.Array:
    dtype = all_fields()[name].dtype if name in all_fields() else None
    values = np.asarray(values)
    if dtype == "int64" and values.dtype.kind == "f":
        mask = np.isnan(values)
        return pa.array(np.where(mask, 0, values).astype(np.int64), mask=mask, type=pa.int64())
    if dtype == "string":
        return pa.array(values.astype(str), type=pa.string())
    if dtype == "float64":
        return pa.array(values.astype(np.float64), mask=np.isnan(values.astype(np.float64)), type=pa.float64())
    return pa.array(values)


def _write(path: Path, columns: dict[str, pa.Array]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    pq.write_table(table, path, compression="zstd")
    return int(table.num_rows)


def _feature_rows(
    customer_id: np.ndarray, ts: np.ndarray, state: dict[str, np.ndarray], names: tuple[str, ...]
) -> dict[str, pa.Array]:
    cols: dict[str, pa.Array] = {
        # The Feast sources key customers by their canonical string id (features/entities.py): 42 -> "42".
        ENTITY: pa.array(np.asarray(customer_id, dtype=np.int64).astype(str), type=pa.string()),
        "event_timestamp": _timestamps(ts),
    }
    cols.update({n: _column(n, state[n]) for n in names})
    return cols


def _concat(parts: list[dict[str, pa.Array]]) -> dict[str, pa.Array]:
    return {k: pa.concat_arrays([p[k] for p in parts]) for k in parts[0]}


def _event_times(
    history: History, computer: StateComputer, cfg: WorldConfig
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(customer, time) of every state change of the event-driven views inside the snapshot horizon."""
    lo, hi = cfg.snapshot_times()[0], cfg.as_of_ts

    def inside(c: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = (t > lo) & (t <= hi)
        return c[keep], t[keep]

    o = history.orders
    before = computer.at(o["customer_id"], o["ts"] - 1)["cart_open"] == 1  # orders that close an open cart
    cart_c = np.concatenate([history.carts["customer_id"], o["customer_id"][before]])
    cart_t = np.concatenate([history.carts["ts"], o["ts"][before]])
    t = history.tickets
    ticket_c = np.concatenate([t["customer_id"], t["customer_id"]])
    ticket_t = np.concatenate([t["opened_ts"], t["closed_ts"]])
    return {
        "cart": inside(cart_c, cart_t),
        "service_tickets": inside(ticket_c, ticket_t),
        "consents": inside(history.consents["customer_id"], history.consents["ts"]),
    }


def _truth_columns(truth: TrueResponse) -> dict[str, pa.Array]:
    cols: dict[str, pa.Array] = {}
    for j, action in enumerate(truth.action_ids):
        cols[f"p_{action}"] = pa.array(truth.p_convert[:, j])
        cols[f"revenue_{action}"] = pa.array(truth.revenue[:, j])
        cols[f"net_{action}"] = pa.array(truth.net[:, j])
    cols["oracle_action"] = pa.array(np.asarray(truth.action_ids)[truth.best()])
    return cols


def generate_world(
    cfg: WorldConfig,
    catalog: ActionCatalog,
    out: Path,
    step: Callable[[str], object] | None = None,
) -> dict[str, int]:
    """Generate and write the world; returns row counts per table. ``step`` is called before each stage."""
    say = step or (lambda _name: None)
    paths = WorldPaths(out)
    rng = np.random.default_rng(cfg.seed)
    say("population and event history")
    pop = draw_population(cfg, rng)
    history = draw_history(cfg, pop, rng)
    origin = cfg.start_ts - 86_400

    say("campaign and outcomes")
    waves = np.asarray(cfg.wave_times(), dtype=np.int64)
    wave_ts = waves[rng.integers(0, waves.size, pop.size)]
    wave_state = with_request_features(StateComputer(pop, history, origin).at(pop.customer_id, wave_ts), wave_ts)
    truth = true_response(wave_state, catalog)
    log = run_campaign(cfg, catalog, pop.customer_id, wave_ts, wave_state, truth, rng)
    history = apply_consequences(cfg, catalog, history, log, wave_state, pop.aversion, rng)
    computer = StateComputer(pop, history, origin)

    counts: dict[str, int] = {}
    say("feature tables")
    snapshot_parts: dict[str, list[dict[str, pa.Array]]] = {v: [] for v in (*SNAPSHOT_VIEWS, *EVENT_VIEWS)}
    for t in cfg.snapshot_times():
        state = computer.at(pop.customer_id, np.full(pop.size, t))
        state["open_ticket_ids"] = computer.open_ticket_ids(pop.customer_id, np.full(pop.size, t))
        for name in snapshot_parts:
            snapshot_parts[name].append(
                _feature_rows(pop.customer_id, np.full(pop.size, t), state, view(name).feature_names)
            )
    for name, (cust, ts) in _event_times(history, computer, cfg).items():
        state = computer.at(cust, ts)
        state["open_ticket_ids"] = computer.open_ticket_ids(cust, ts)
        snapshot_parts[name].append(_feature_rows(cust, ts, state, view(name).feature_names))
    for name, parts in snapshot_parts.items():
        counts[view(name).table] = _write(paths.table(name), _concat(parts))
    profile = computer.at(pop.customer_id, pop.signup_ts)
    counts["customer_profile"] = _write(
        paths.table("customer_profile"),
        _feature_rows(pop.customer_id, pop.signup_ts, profile, view("customer_profile").feature_names),
    )

    say("raw tables and ground truth")
    raw = {
        "customers": {
            ENTITY: pop.customer_id,
            "signup_ts": pop.signup_ts,
            "age": pop.age,
            "region": pop.region,
            "tier": pop.tier,
            "app_user": pop.app_user,
        },
        "orders": history.orders,
        "sessions": history.sessions,
        "cart_events": history.carts,
        "tickets": history.tickets,
        "consent_events": history.consents,
        "contacts": history.contacts,
    }
    renames = {
        "ts": "event_timestamp",
        "opened_ts": "opened_at",
        "closed_ts": "closed_at",
        "signup_ts": "signup_at",
    }
    for name, table in raw.items():
        cols: dict[str, pa.Array] = {}
        for key, values in table.items():
            if key not in renames:
                cols[key] = pa.array(values)
            elif key == "closed_ts":  # tickets still open at as_of have no closing time yet
                stamps = _timestamps(values)
                cols[renames[key]] = pa.array(stamps, mask=np.asarray(values) > cfg.as_of_ts)
            else:
                cols[renames[key]] = _timestamps(values)
        counts[name] = _write(paths.raw / f"{name}.parquet", cols)
    log_cols = {k: pa.array(v) for k, v in log.items() if k != "ts"}
    log_cols["event_timestamp"] = _timestamps(log["ts"])
    counts["campaign_log"] = _write(paths.raw / "campaign_log.parquet", log_cols)
    counts["ground_truth"] = _write(
        paths.truth / "campaign.parquet",
        {
            ENTITY: pa.array(log["customer_id"]),
            "event_timestamp": _timestamps(log["ts"]),
            **_truth_columns(truth),
        },
    )
    now_state = with_request_features(computer.at(pop.customer_id, np.full(pop.size, cfg.as_of_ts)), cfg.as_of_ts)
    counts["ground_truth_now"] = _write(
        paths.truth / "now.parquet",
        {ENTITY: pa.array(pop.customer_id), **_truth_columns(true_response(now_state, catalog))},
    )

    manifest = {
        "schema_version": SCHEMA_VERSION,
        "config": json.loads(cfg.model_dump_json()),
        "catalog_version": catalog.version,
        "catalog_hash": catalog.content_hash,
        "views": [v.name for v in VIEWS],
        "rows": counts,
    }
    paths.manifest.write_text(json.dumps(manifest, indent=2))
    return counts
