"""Batch decisioning for outbound campaigns (``nextbest decide-batch``): the same decision core as the online
service, vectorised. Features come inline (the input file's columns, like ``nextbest train --data``) or from
the Feast online store by customer id; the model from a directory or the registry alias.

Like ``/decide``, a batch reads each customer's contact history from the decision log (so frequency caps,
cooldowns and ignore-suppression hold for outbound campaigns too) and records every decision there, in bulk:
feedback joins to a batch decision by its id, its sends count toward later contact policies, and retraining
and analytics see outbound and real-time decisions alike. A dry run reads the history and records nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.core.contract import FeatureGaps, rule_feature_gaps
from nextbest.core.decision import DecisionPolicy
from nextbest.core.decision_batch import BatchDecisions, decide_batch
from nextbest.core.degradation import DecisionInputs, ViewStatus, degradation
from nextbest.core.ids import InvalidCustomerId, canonical_customer_ids
from nextbest.core.served import ServedDecision
from nextbest.errors import DataError
from nextbest.io.decision_log import DecisionLog, DecisionRecord
from nextbest.model.policy_model import PolicyModel
from nextbest.serving.decision_output import render
from nextbest.serving.inputs import contact_histories
from nextbest.settings import ServingSettings

Progress = Callable[[int], None]
RECORD_CHUNK = 2_000  # decisions per transaction: another process's writer waits for one chunk at most


@dataclass(frozen=True)
class BatchResult:
    frame: pd.DataFrame
    seconds: float
    decide_seconds: float  # excluding input reading, Feast lookups, the log and writing
    history_seconds: float = 0.0  # reading contact histories from the decision log
    record_seconds: float = 0.0  # recording the decisions in the decision log
    recorded: int = 0  # decisions newly written to the log (a re-run of the same batch writes none)


@dataclass(frozen=True)
class DecisionLogUse:
    """How a batch uses the decision log: where it is, the history window, and whether to record (a dry run
    reads contact histories and records nothing)."""

    log: DecisionLog
    serving: ServingSettings
    feature_service: str
    record: bool = True


def read_customers(path: Path) -> pd.DataFrame:
    """The input with ``customer_id`` in its canonical (string) form (42 and "42" are one customer)."""
    if not path.is_file():
        raise DataError(f"input file {path} does not exist")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        else:  # ids as written: a CSV's "007" must not become the number 7
            frame = pd.read_csv(path, dtype={"customer_id": str})
    except Exception as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if "customer_id" not in frame.columns:
        raise DataError(f"{path}: missing required column 'customer_id'")
    try:
        frame["customer_id"] = canonical_customer_ids(frame["customer_id"].to_numpy())
    except InvalidCustomerId as exc:
        raise DataError(f"{path}: column 'customer_id': {exc}") from None
    if frame["customer_id"].duplicated().any():
        dup = frame.loc[frame["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise DataError(f"{path}: customer_id {dup} appears more than once")
    for column in frame.columns:  # a feature of +-inf is a broken export, not a value: say so, decide nothing
        if frame[column].dtype.kind != "f":
            continue
        bad = np.isinf(frame[column].to_numpy())
        if bad.any():
            raise DataError(
                f"{path}: column {column!r} has {int(bad.sum()):,} infinite value(s) (first for customer_id "
                f"{frame['customer_id'].iloc[int(np.argmax(bad))]}); leave a value empty (null) when it is unknown"
            )
    return frame


def inline_features(frame: pd.DataFrame, model: PolicyModel) -> dict[str, Any]:
    """Feature columns from the input; every model feature must be present (missing values may be null)."""
    missing = [f for f in model.feature_names if f not in frame.columns]
    if missing:
        raise DataError(f"input lacks feature column(s) {missing[:10]} the model needs (or use --features feast)")
    return {c: frame[c].to_numpy(dtype=object if frame[c].dtype == object else None) for c in frame.columns}


def available_features(features: dict[str, Any]) -> list[str]:
    """Feature columns with a value for at least one customer (a column that is null everywhere is absent to rules
    as much as a missing one: ``has()`` is false for every customer)."""
    out = []
    for name, values in features.items():
        arr = np.asarray(values)
        if arr.dtype.kind == "f":
            present = bool((~np.isnan(arr)).any())
        elif arr.dtype.kind == "O":
            present = any(v is not None and v == v for v in arr)  # v == v: False for NaN
        else:
            present = arr.size > 0
        if present:
            out.append(name)
    return out


def feature_gaps(policy: DecisionPolicy, features: dict[str, Any]) -> FeatureGaps:
    """Rules of ``policy`` reading customer features that no customer of the batch has."""
    return rule_feature_gaps(policy.engine, available_features(features))


def run_batch(
    policy: DecisionPolicy,
    model: PolicyModel,
    frame: pd.DataFrame,
    features: dict[str, Any],
    channel: str,
    now: float | None = None,
    chunk: int = 20_000,
    progress: Progress | None = None,
    scores: bool = False,
    log: DecisionLogUse | None = None,
    view_status: Sequence[Mapping[str, ViewStatus]] | None = None,
) -> BatchResult:
    """Decide for every row of ``frame``; ``features`` maps name -> one value per row. With ``log``, contact
    histories come from the decision log and the decisions are recorded there; without, every customer is
    "never contacted" and nothing is recorded (the decision core alone, as tests and benchmarks use it).
    ``view_status`` (features read from the online store, :func:`feast_rows`): an unknown customer or one with
    a stale or missing view is served the fallback (nextbest/core/degradation.py), as ``/decide`` serves it."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    cands = policy.candidates(channel)
    scored = tuple(a for a in cands if a in model.action_ids)
    ids = canonical_customer_ids(frame["customer_id"].to_numpy())
    version = str(model.metadata.get("version", ""))
    fallbacks = None
    if view_status is not None:
        scorable = policy.catalog.control in scored
        fallbacks = [
            degradation(DecisionInputs(c, view_status=v, control_scorable=scorable))
            for c, v in zip(ids, view_status, strict=True)
        ]
    parts: list[pd.DataFrame] = []
    decide_time = history_time = record_time = 0.0
    recorded = 0
    for start in range(0, len(ids), chunk):
        part_ids = ids[start : start + chunk]
        part = {k: v[start : start + chunk] for k, v in features.items()}
        histories = None
        if log is not None:
            t0 = time.perf_counter()
            histories = contact_histories(log.log, policy.history, part_ids, now, log.serving)
            history_time += time.perf_counter() - t0
        t0 = time.perf_counter()
        X = model.encoder.transform_columns(part, len(part_ids))
        p, revenue, average_effect = model.score(X, scored, threads=2)
        decisions = decide_batch(
            policy,
            part_ids,
            part,
            p,
            revenue,
            average_effect=average_effect,
            channel=channel,
            now=int(now),
            candidates=scored,
            histories=histories,
            degradations=None if fallbacks is None else fallbacks[start : start + chunk],
            margin=model.decision_margin,
            scale=model.value_scale,
        )
        cols = decisions.columns(explain=True, scores=scores)
        decide_time += time.perf_counter() - t0
        if log is not None and log.record:
            t0 = time.perf_counter()
            for i in range(0, len(decisions), RECORD_CHUNK):  # built and written a chunk at a time (memory)
                rows = range(i, min(i + RECORD_CHUNK, len(decisions)))
                records = batch_records(decisions, part, version or None, log.feature_service, now, rows)
                recorded += log.log.record_decisions(records)
            record_time += time.perf_counter() - t0
        parts.append(pd.DataFrame(cols))
        if progress:
            progress(len(cols["customer_id"]))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out["model_version"] = version
    return BatchResult(out, time.perf_counter() - started, decide_time, history_time, record_time, recorded)


def batch_records(
    decisions: BatchDecisions,
    features: dict[str, Any],
    model_version: str | None,
    feature_service: str,
    now: float,
    rows: range | None = None,
) -> list[DecisionRecord]:
    """The decision-log record of each row (``rows``, default all), as ``/decide`` would have logged it (its
    response body included); ``features`` are the row's values, as the model read them."""
    catalog = decisions.policy.catalog
    rows = range(len(decisions)) if rows is None else rows
    names = [n for n in features if n != "customer_id"]
    columns = [np.asarray(features[n][rows.start : rows.stop]).tolist() for n in names]  # plain Python values
    out = []
    for i in rows:
        d = decisions.decision(i)
        served = ServedDecision.of(
            d,
            catalog,
            customer_id=str(d.customer_id),
            channel=decisions.channel,
            request_id=None,
            model_version=model_version,
            feature_service=feature_service,
            decided_at=now,
        )
        row = {n: col[i - rows.start] for n, col in zip(names, columns, strict=True)}
        out.append(render(served, row)[1])
    return out
