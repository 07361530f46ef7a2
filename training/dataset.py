"""Training sets: point-in-time features from Feast over the campaign log, or a file you bring.

Either way the result is one frame with the features, the logged ``action``, its logging ``propensity``,
the outcome (``converted``, ``revenue``) and, on the synthetic world, the true net value of every action.
Customers (not rows) are split into train / validation / test so no customer leaks across splits.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.core.catalog import ActionCatalog
from nextbest.core.features import ENTITY, FEATURE_SERVICES, REQUEST_TS, categorical_features, model_features
from nextbest.errors import DataError
from nextbest.training.logged_decisions import (
    RESERVED,
    complete_decisions,
    customer_ids,
    feature_columns,
    usable_log_rows,
    validate_decisions,
)

# The column checks live in training.logged_decisions; the public ones stay importable from here.
__all__ = [
    "RESERVED",
    "TrainingSet",
    "customer_ids",
    "from_decision_log",
    "from_feast",
    "from_frame",
    "load_file",
    "logged_feature_service",
    "split",
    "split_test",
    "unix_seconds",
    "usable_log_rows",
]


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    source: str
    feature_service: str | None
    truth: pd.DataFrame | None  # net_<action> per row (synthetic world only), aligned with ``frame``
    notes: tuple[str, ...] = ()

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    @property
    def fingerprint(self) -> str:
        """Content hash of the rows and columns used (logged with every model)."""
        cols = [ENTITY, "event_timestamp", "action", "converted", "revenue", "propensity", *self.features]
        hashed = pd.util.hash_pandas_object(self.frame[cols], index=False).to_numpy()
        return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]

    def subset(self, mask: np.ndarray) -> TrainingSet:
        truth = None if self.truth is None else self.truth.loc[mask].reset_index(drop=True)
        return TrainingSet(
            self.frame.loc[mask].reset_index(drop=True),
            self.numeric,
            self.categorical,
            self.source,
            self.feature_service,
            truth,
            self.notes,
        )

    def rewards(self, catalog: ActionCatalog) -> np.ndarray:
        """Net value of each logged row: revenue minus the fixed cost of the action taken."""
        costs = catalog.costs[self.action_index(catalog)]
        rewards: np.ndarray = self.frame["revenue"].to_numpy(dtype=np.float64) - costs
        return rewards

    def action_index(self, catalog: ActionCatalog) -> np.ndarray:
        index: np.ndarray = self.frame["action"].map(catalog.index).to_numpy(dtype=np.int64)
        return index


def unix_seconds(ts: pd.Series) -> pd.Series:
    return (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def load_file(path: Path, catalog: ActionCatalog, min_rows: int = 100) -> TrainingSet:
    """Bring-your-own data: parquet or CSV with one logged decision per row and any feature columns."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        else:  # ids as written: a CSV's "007" must not become the number 7
            frame = pd.read_csv(path, dtype={ENTITY: str})
    except Exception as exc:
        raise DataError(f"{path}: cannot read as {'parquet' if path.suffix == '.parquet' else 'CSV'}: {exc}") from exc
    return from_frame(frame, catalog, f"file:{path}", min_rows)


def from_frame(
    frame: pd.DataFrame,
    catalog: ActionCatalog,
    source: str,
    min_rows: int = 100,
    features: tuple[list[str], list[str]] | None = None,
    feature_service: str | None = None,
) -> TrainingSet:
    """Validate logged decisions in a frame; ``features`` = (numeric, categorical) or every other column."""
    where = source.removeprefix("file:")
    notes = validate_decisions(frame, catalog, min_rows, where)
    frame = complete_decisions(frame, catalog, where)
    if features is None:
        truth_names = {f"{k}_{a}" for a in catalog.ids for k in ("net", "p", "revenue")} | {"oracle_action"}
        truth_cols = [c for c in frame.columns if c in truth_names]  # ground truth, when the file has it
        feature_cols = [c for c in frame.columns if c not in RESERVED and c not in truth_cols]
        if truth_cols:  # a customer's own p_email (say, an open rate) must not vanish without a word
            notes.append(
                f"column(s) {', '.join(truth_cols[:10])} read as ground truth (net_/p_/revenue_<action>, "
                "oracle_action), not as features: rename them to use them as features"
            )
        numeric, categorical, left_out = feature_columns(frame, feature_cols)
        notes.extend(left_out)
        if not numeric and not categorical:
            raise DataError(
                f"{where}: no feature columns besides {sorted(RESERVED & set(frame.columns))}"
                + (f"; {left_out[0]}" if left_out else "")
            )
    else:
        numeric, categorical = features
        missing = [c for c in (*numeric, *categorical) if c not in frame.columns]
        if missing:
            raise DataError(f"{where}: missing feature column(s) {missing[:10]}")
    return TrainingSet(frame, numeric, categorical, source, feature_service, _truth_from(frame, catalog), tuple(notes))


def logged_feature_service(rows: list[dict[str, Any]], default: str) -> str:
    """The feature service the logged decisions were served with (the most frequent one this project knows:
    the model that served them named it), else ``default``."""
    counts = Counter(r.get("feature_service") for r in rows if r.get("feature_service") in FEATURE_SERVICES)
    return str(counts.most_common(1)[0][0]) if counts else default


def from_decision_log(
    rows: list[dict[str, Any]], catalog: ActionCatalog, feature_service: str, min_rows: int = 100
) -> TrainingSet:
    """Closing the loop: the service's own decisions with their outcomes. Features are exactly as served,
    the action is the one served and ``propensity`` the probability it was served with (exploration
    included), so inverse-propensity weighting stays unbiased. Degraded decisions (no model, no features)
    carry no information about the policy and are left out."""
    if not rows:
        raise DataError("the decision log has no decisions in the window; serve some traffic first")
    frame = pd.DataFrame(rows)
    frame = frame[~frame["degraded"].astype(bool)].reset_index(drop=True)
    if frame.empty:
        raise DataError("every decision in the window was degraded (no features or model): nothing to learn")
    frame, skipped = usable_log_rows(frame, catalog)
    if frame.empty:
        raise DataError(f"no usable decision in the window: {skipped}")
    numeric = [c for c in model_features(feature_service) if c not in categorical_features(feature_service)]
    ds = from_frame(
        frame,
        catalog,
        f"log:{feature_service}",
        min_rows,
        (numeric, list(categorical_features(feature_service))),
        feature_service,
    )
    if skipped:
        ds = replace(ds, notes=(skipped, *ds.notes))
    return ds


def _truth_from(frame: pd.DataFrame, catalog: ActionCatalog) -> pd.DataFrame | None:
    cols = [f"net_{a}" for a in catalog.ids]
    return frame[cols].reset_index(drop=True) if all(c in frame.columns for c in cols) else None


def from_feast(
    store: Any, data_dir: Path, catalog: ActionCatalog, feature_service: str, min_rows: int = 100
) -> TrainingSet:
    """Point-in-time features for every campaign-log row (entity = customer and assignment time)."""
    log_path = data_dir / "raw" / "campaign_log.parquet"
    if not log_path.is_file():
        raise DataError(f"campaign log {log_path} does not exist; run `nextbest data generate` first")
    from nextbest.features.store import source_key_kind

    log = pd.read_parquet(log_path)
    notes = validate_decisions(log, catalog, min_rows, str(log_path))
    log[ENTITY] = customer_ids(log[ENTITY], str(log_path))
    entity = log[[ENTITY, "event_timestamp"]].assign(**{REQUEST_TS: unix_seconds(log["event_timestamp"])})
    if source_key_kind(data_dir) == "integer":  # tables of an older world: the join needs integer entity rows
        try:
            entity[ENTITY] = entity[ENTITY].astype(np.int64)
        except ValueError as exc:
            raise DataError(f"{log_path}: the feature tables key customers by integers, the log has {exc}") from None
    service = store.get_feature_service(feature_service)
    feats = store.get_historical_features(entity_df=entity, features=service).to_df()
    feats[ENTITY] = customer_ids(feats[ENTITY], "point-in-time features")
    frame = log.merge(
        feats.drop(columns=[REQUEST_TS]), on=[ENTITY, "event_timestamp"], how="left", validate="one_to_one"
    )
    truth_path = data_dir / "truth" / "campaign.parquet"
    if truth_path.is_file():
        truth = pd.read_parquet(truth_path, columns=[ENTITY, "event_timestamp", *(f"net_{a}" for a in catalog.ids)])
        truth[ENTITY] = customer_ids(truth[ENTITY], str(truth_path))
        frame = frame.merge(truth, on=[ENTITY, "event_timestamp"], how="left", validate="one_to_one")
    frame = complete_decisions(frame, catalog, str(log_path))
    numeric = [c for c in model_features(feature_service) if c not in categorical_features(feature_service)]
    return TrainingSet(
        frame,
        numeric,
        list(categorical_features(feature_service)),
        f"feast:{feature_service}",
        feature_service,
        _truth_from(frame, catalog),
        tuple(notes),
    )


def split(ds: TrainingSet, test_fraction: float, valid_fraction: float, seed: int) -> dict[str, TrainingSet]:
    """Deterministic split by a hash of (seed, customer id): a customer is in exactly one split."""
    keys = ds.frame[ENTITY].astype(str).radd(f"{seed}:")
    u = pd.util.hash_pandas_object(keys, index=False).to_numpy() / np.float64(2**64)
    test = u < test_fraction
    valid = ~test & (u < test_fraction + (1 - test_fraction) * valid_fraction)
    train = ~test & ~valid
    return {"train": ds.subset(train), "valid": ds.subset(valid), "test": ds.subset(test)}


def split_test(ds: TrainingSet, test_fraction: float, seed: int) -> tuple[TrainingSet, TrainingSet | None]:
    """(rows to train on, customers held out entirely or None): the same customer hash as :func:`split`."""
    if test_fraction <= 0:
        return ds, None
    keys = ds.frame[ENTITY].astype(str).radd(f"{seed}:")
    u = pd.util.hash_pandas_object(keys, index=False).to_numpy() / np.float64(2**64)
    test = u < test_fraction
    if test.all() or not test.any():
        raise DataError(f"test_fraction {test_fraction} leaves no rows to train on or none to test on")
    return ds.subset(~test), ds.subset(test)
