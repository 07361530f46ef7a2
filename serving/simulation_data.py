"""Inputs of ``nextbest rules check --sample`` and ``nextbest rules simulate``: decisions from the decision
log, or customers from the online store, turned into the pure core's :class:`LoggedDecision` rows.

From the log (``source=log``), every decision is replayed with exactly what it saw: the features and model
scores it logged, and the contact history rebuilt from the log as it stood at the decision time (the same
``contacts()`` query and :class:`HistoryBuilder` the service uses, rows after the decision left out). The
reward is the conversion revenue its feedback reported minus the served action's cost. Degraded decisions
carry no scores (the fallback served without a model) and are skipped.

From the online store (``source=customers``) there are no outcomes: customers are sampled from the world's
tables, read through the FeatureService and scored by the champion, so the value change is model-based.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.core.contact import History, HistoryBuilder
from nextbest.core.decision import DecisionPolicy
from nextbest.core.degradation import DecisionInputs, degradation
from nextbest.core.features import DEFAULT_FEATURE_SERVICE, ENTITY, VIEWS, request_time_features
from nextbest.core.ids import canonical_customer_ids
from nextbest.core.simulation import LoggedDecision
from nextbest.errors import DataError
from nextbest.io.decision_log import DecisionLog, DecisionOutcome, DecisionRecord
from nextbest.serving.inputs import online_rows
from nextbest.settings import Settings

log = logging.getLogger(__name__)
DAY = 86_400.0


@dataclass
class Loaded:
    rows: list[LoggedDecision] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)  # ruleset versions the decisions were logged under

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class ContactHistories:
    """Contact histories from the decision log at any time since ``earliest``, as the service builds them
    (same query, window and builder). One query per customer finds when their contacts start; a decision
    before that needs no further query (the common case: most customers were not contacted before)."""

    def __init__(
        self, log_: DecisionLog, builder: HistoryBuilder, days: int, delivered_only: bool, earliest: float
    ) -> None:
        self.log, self.builder, self.window, self.delivered_only = log_, builder, days * DAY, delivered_only
        self.earliest = earliest
        self._first: dict[str, float] = {}  # customer -> time of their first contact row (inf: none)

    def at(self, customer_id: str, now: float, *, before: bool = False) -> History | None:
        """The history at ``now``; ``before`` leaves out rows logged in the same second (the decision itself)."""
        cut = int(now)
        if customer_id not in self._first:
            rows = self.log.contacts(customer_id, self.earliest - self.window, delivered_only=self.delivered_only)
            self._first[customer_id] = min((r[0] for r in rows), default=math.inf)
        first = self._first[customer_id]
        if first >= cut if before else first > cut:
            return None
        rows = self.log.contacts(customer_id, now - self.window, delivered_only=self.delivered_only)
        rows = [r for r in rows if r[0] < cut] if before else rows
        return self.builder.build(rows, cut) if rows else None


def _row(
    rec: DecisionRecord, outcome: DecisionOutcome, catalog: ActionCatalog, history: History | None, margin: float
) -> LoggedDecision:
    scores = {s["action"]: s for s in rec.scores}
    cands = tuple(scores)
    p = np.array([float(scores[a]["propensity"]) for a in cands])
    rev = p * np.array([float(scores[a]["value"]) for a in cands])
    costs = np.array([float(scores[a]["cost"]) for a in cands])
    return LoggedDecision(
        customer_id=rec.customer_id,
        channel=rec.channel,
        now=int(rec.created_at),
        candidates=cands,
        p_convert=p,
        expected_revenue=rev,
        features=rec.features,
        history=history,
        margin=margin,
        decision_id=rec.decision_id,
        action=rec.action,
        probability=rec.probability,
        reward=outcome.revenue - float(scores[rec.action]["cost"]),
        greedy_action=rec.response.get("greedy_action"),
        costs=costs,
        context=rec.context,
    )


def rows_from_log(
    log_: DecisionLog,
    catalog: ActionCatalog,
    *,
    since: float,
    until: float | None = None,
    limit: int | None = None,
    history_days: int = 30,
    delivered_only: bool = True,
    margin: Callable[[str | None], float] = lambda version: 0.0,
) -> Loaded:
    """Logged decisions in ``[since, until)``, newest first, at most ``limit`` read."""
    out = Loaded()
    builder = HistoryBuilder(catalog.channels, catalog.control)
    histories = ContactHistories(log_, builder, history_days, delivered_only, since)
    for rec, outcome in log_.decisions(since, until, limit=limit):
        if rec.degraded or not rec.scores:
            out.skip("degraded (no model scores)")
            continue
        scored = {s.get("action") for s in rec.scores}
        if not scored <= set(catalog.by_id) or rec.action not in scored or catalog.control not in scored:
            out.skip("actions not in the current catalog")
            continue
        if not (math.isfinite(outcome.revenue) and outcome.revenue >= 0 and math.isfinite(rec.probability)):
            out.skip("non-finite or negative revenue or probability")
            continue
        history = histories.at(rec.customer_id, rec.created_at, before=True)
        version = rec.ruleset_version or "unknown"
        out.versions[version] = out.versions.get(version, 0) + 1
        out.rows.append(_row(rec, outcome, catalog, history, margin(rec.model_version)))
    return out


def sample_customer_ids(data_dir: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` customer ids (canonical strings) drawn from the world's profile table (sorted, reproducible)."""
    import pyarrow.parquet as pq

    table = data_dir / "feature_tables" / "customer_profile.parquet"
    if not table.is_file():
        raise DataError(f"cannot sample customers: {table} does not exist; run `nextbest data generate` first")
    raw = pq.read_table(table, columns=[ENTITY]).column(ENTITY).to_numpy()
    ids = np.unique(np.array(canonical_customer_ids(raw), dtype=object))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(n, ids.size), replace=False) if ids.size else ids
    return sorted(str(c) for c in chosen)


def table_features(data_dir: Path, ids: Sequence[str], now: float) -> list[dict[str, Any]]:
    """Each customer's latest row (at or before ``now``) of every feature table, plus the request-time
    features: what the online store would serve, read from the files when the store is unavailable."""
    import pandas as pd

    wanted = pd.Index(ids, name=ENTITY)
    frame = pd.DataFrame(index=wanted)
    cutoff = pd.Timestamp(now, unit="s", tz="UTC")
    for spec in VIEWS:
        path = data_dir / "feature_tables" / f"{spec.table}.parquet"
        if not path.is_file():
            continue
        table = pd.read_parquet(path, columns=[ENTITY, "event_timestamp", *spec.served_names])
        table[ENTITY] = canonical_customer_ids(table[ENTITY].to_numpy())  # tables of older worlds: integers
        table = table[table[ENTITY].isin(wanted) & (table["event_timestamp"] <= cutoff)]
        latest = table.sort_values("event_timestamp").groupby(ENTITY).last()
        frame = frame.join(latest[list(spec.served_names)])
    columns = {c: frame[c].to_numpy(dtype=object) for c in frame.columns}
    columns.update({k: v.astype(object) for k, v in request_time_features(columns, now).items()})
    out = []
    for i in range(len(frame)):
        row = {k: v[i] for k, v in columns.items()}
        out.append({k: (None if v is None or (isinstance(v, float) and v != v) else _plain(v)) for k, v in row.items()})
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def online_features(
    settings: Settings, ids: Sequence[str], now: float, service: str = DEFAULT_FEATURE_SERVICE
) -> list[Any]:
    """Online rows (``CustomerFeatures``) through the FeatureService, freshness enforced; raises when the
    store cannot be opened or read."""
    from nextbest.features.online import OnlineFeatureReader
    from nextbest.features.store import open_store

    return online_rows(OnlineFeatureReader(open_store(settings), service), ids, now)


def sample_features(
    settings: Settings, n: int, now: float, seed: int = 0
) -> tuple[list[str], list[dict[str, Any]], str]:
    """Ids and features of ``n`` sampled customers as served, and where they came from: the online store, or
    the latest rows of the feature tables when the store is unavailable or holds none of them."""
    assert settings.data_dir is not None
    ids = sample_customer_ids(settings.data_dir, n, seed)
    try:
        rows = [r for r in online_features(settings, ids, now) if r.found]
        if rows:
            return [r.customer_id for r in rows], [r.values for r in rows], f"{len(rows)} customers, online store"
        reason = "it holds none of the sampled customers"
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.warning("online store unavailable for sampling: %s", reason)
    found = table_features(settings.data_dir, ids, now)
    return ids, found, f"{len(found)} customers, feature tables in {settings.data_dir} (online store: {reason})"


def rows_from_customers(
    settings: Settings,
    policy: DecisionPolicy,
    model: Any,
    *,
    n: int,
    channel: str,
    now: float,
    seed: int = 0,
    histories: ContactHistories | None = None,
) -> Loaded:
    """``n`` sampled customers scored by ``model`` (a ``PolicyModel``) as the service would score them now;
    customers with stale or missing features are skipped (the service would serve its fallback)."""
    assert settings.data_dir is not None
    out = Loaded()
    online = online_features(settings, sample_customer_ids(settings.data_dir, n, seed), now)
    # The service's fallback policy (nextbest/core/degradation.py): a customer it would not score is skipped.
    fresh = [r for r in online if degradation(DecisionInputs(r.customer_id, view_status=r.view_status)) is None]
    for _ in range(len(online) - len(fresh)):
        out.skip("stale or missing features (the service would serve its fallback)")
    scored = tuple(a for a in policy.candidates(channel) if a in model.action_ids)
    if not fresh:
        return out
    p, rev = model.predict(model.encoder.transform_records([r.values for r in fresh]), scored, threads=2)
    for i, r in enumerate(fresh):
        history = histories.at(r.customer_id, now) if histories is not None else None
        out.rows.append(
            LoggedDecision(
                r.customer_id, channel, int(now), scored, p[i], rev[i], r.values, history, margin=model.decision_margin
            )
        )
    out.notes.append("no outcomes for sampled customers: the value change is the model's expected net value")
    return out
