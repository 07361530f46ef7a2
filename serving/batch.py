"""Batch decisioning for outbound campaigns (``nextbest decide-batch``): the same decision core as the online
service, vectorised. Features come inline (the input file's columns, like ``nextbest train --data``) or from
the Feast online store by customer id; the model from a directory or the registry alias.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.core.contract import FeatureGaps, rule_feature_gaps
from nextbest.core.decision import DecisionPolicy
from nextbest.core.decision_batch import decide_batch
from nextbest.core.ids import InvalidCustomerId, canonical_customer_ids
from nextbest.errors import DataError
from nextbest.model.policy_model import PolicyModel

Progress = Callable[[int], None]


@dataclass(frozen=True)
class BatchResult:
    frame: pd.DataFrame
    seconds: float
    decide_seconds: float  # excluding input reading, Feast lookups and writing


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
    return frame


def inline_features(frame: pd.DataFrame, model: PolicyModel) -> dict[str, Any]:
    """Feature columns from the input; every model feature must be present (missing values may be null)."""
    missing = [f for f in model.feature_names if f not in frame.columns]
    if missing:
        raise DataError(f"input lacks feature column(s) {missing[:10]} the model needs (or use --features feast)")
    return {c: frame[c].to_numpy(dtype=object if frame[c].dtype == object else None) for c in frame.columns}


def feast_features(reader: Any, ids: list[str], now: float, chunk: int = 500) -> dict[str, Any]:
    """Online features for many customers, read in chunks; stale views come back missing."""
    rows: list[dict[str, Any]] = []
    for start in range(0, len(ids), chunk):
        rows.extend(r.values for r in reader.read(ids[start : start + chunk], now))
    names = list(rows[0]) if rows else []
    return {n: np.array([r[n] for r in rows], dtype=object) for n in names}


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
) -> BatchResult:
    """Decide for every row of ``frame``; ``features`` maps name -> one value per row."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    cands = policy.candidates(channel)
    scored = tuple(a for a in cands if a in model.action_ids)
    ids = canonical_customer_ids(frame["customer_id"].to_numpy())
    parts: list[pd.DataFrame] = []
    decide_time = 0.0
    for start in range(0, len(ids), chunk):
        part = {k: v[start : start + chunk] for k, v in features.items()}
        t0 = time.perf_counter()
        X = model.encoder.transform_columns(part, len(ids[start : start + chunk]))
        p, revenue = model.predict(X, scored, threads=2)
        decisions = decide_batch(
            policy,
            ids[start : start + chunk],
            part,
            p,
            revenue,
            channel=channel,
            now=int(now),
            candidates=scored,
            margin=model.decision_margin,
            scale=model.value_scale,
        )
        cols = decisions.columns(explain=True, scores=scores)
        decide_time += time.perf_counter() - t0
        parts.append(pd.DataFrame(cols))
        if progress:
            progress(len(cols["customer_id"]))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out["model_version"] = str(model.metadata.get("version", ""))
    return BatchResult(out, time.perf_counter() - started, decide_time)
