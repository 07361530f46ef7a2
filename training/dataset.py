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
from nextbest.core.ids import InvalidCustomerId, canonical_customer_ids
from nextbest.errors import DataError

REQUIRED = (ENTITY, "action")
OUTCOMES = ("converted", "revenue")  # at least one
MIN_OUTCOMES = 10  # converted rows, and rows that did not convert, below which nothing can be learned
OPTIONAL = ("event_timestamp", "revenue", "propensity", "converted")
RESERVED = frozenset((*REQUIRED, *OPTIONAL, REQUEST_TS, "campaign_id", "split"))


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


def _validate(frame: pd.DataFrame, catalog: ActionCatalog, min_rows: int, where: str) -> list[str]:
    """Check the logged-decision columns; returns notes about what was filled in."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: missing required column(s) {missing}; need {list(REQUIRED)} and {' or '.join(OUTCOMES)}"
        )
    if not any(c in frame.columns for c in OUTCOMES):
        raise DataError(f"{where}: no outcome column: need 'converted' (0/1), 'revenue' (a number), or both")
    if frame.empty:
        raise DataError(f"{where}: no rows")
    unknown = sorted(set(frame["action"].astype(str)) - set(catalog.ids))
    if unknown:
        raise DataError(f"{where}: unknown action(s) {unknown[:10]}; the catalog has {list(catalog.ids)}")
    if catalog.control not in set(frame["action"]):
        raise DataError(f"{where}: no rows with the control action {catalog.control!r}: uplift needs a control")
    if "converted" in frame.columns:
        conv = pd.to_numeric(frame["converted"], errors="coerce")
        if conv.isna().any() or not conv.isin([0, 1]).all():
            raise DataError(f"{where}: column 'converted' must be 0 or 1 in every row")
        converted = int(conv.sum())
        if min(converted, len(frame) - converted) < MIN_OUTCOMES:
            raise DataError(
                f"{where}: {converted:,} of {len(frame):,} rows converted; learning needs at least {MIN_OUTCOMES} "
                "rows that converted and as many that did not (collect more outcomes, or a longer window)"
            )
    notes: list[str] = []
    if "propensity" in frame.columns:
        prop = pd.to_numeric(frame["propensity"], errors="coerce")
        bad = prop.isna() | (prop <= 0) | (prop > 1)
        if bad.any():
            first = frame.index[bad.to_numpy()][0]
            raise DataError(
                f"{where}: column 'propensity' must be in (0, 1]; row {first} has {frame['propensity'][first]!r}"
            )
    else:
        notes.append("no 'propensity' column: assignment assumed independent of features (empirical shares)")
    if "revenue" in frame.columns:
        rev = pd.to_numeric(frame["revenue"], errors="coerce")
        if not np.isfinite(rev.to_numpy(dtype=np.float64, na_value=np.nan)).all():
            raise DataError(f"{where}: column 'revenue' must be a finite number in every row")
        if "converted" not in frame.columns and rev.nunique() < 2:
            raise DataError(f"{where}: column 'revenue' is the same in every row ({rev.iloc[0]!r}): nothing to learn")
        if (rev < 0).any():
            notes.append("negative revenue in some rows: learned as a value like any other (refunds, net margin)")
        if "converted" not in frame.columns:
            notes.append("no 'converted' column: a row converted when its revenue is above 0")
    else:
        notes.append("no 'revenue' column: revenue = converted x catalog value x (1 - discount)")
    if "event_timestamp" not in frame.columns:
        notes.append("no 'event_timestamp' column: rows are treated as simultaneous")
    counts = frame["action"].value_counts()
    few = {a: int(counts.get(a, 0)) for a in catalog.ids if counts.get(a, 0) < min_rows}
    if few:
        raise DataError(f"{where}: too few rows per action (need {min_rows}): {few}")
    if catalog.control not in counts or counts[catalog.control] == 0:
        raise DataError(f"{where}: no rows for the control action {catalog.control!r}: uplift needs a baseline")
    unseen = [a for a in catalog.ids if counts.get(a, 0) == 0]
    if unseen:
        notes.append(f"no rows for {', '.join(unseen)}: learned only through the action descriptors (S-learner)")
    return notes


def customer_ids(column: pd.Series, where: str) -> list[str]:
    """A column of customer ids in their canonical (string) form: 42 and "42" are one customer in every split."""
    try:
        return canonical_customer_ids(column.to_numpy())
    except InvalidCustomerId as exc:
        raise DataError(f"{where}: column {ENTITY!r}: {exc}") from None


def _complete(frame: pd.DataFrame, catalog: ActionCatalog, where: str = "data") -> pd.DataFrame:
    out = frame.copy()
    out[ENTITY] = customer_ids(out[ENTITY], where)
    out["action"] = out["action"].astype(str)
    if "converted" not in out.columns:
        out["converted"] = (pd.to_numeric(out["revenue"]) > 0).astype(np.int64)
    if "event_timestamp" not in out.columns:
        out["event_timestamp"] = pd.Timestamp(0, tz="UTC")
    out["converted"] = pd.to_numeric(out["converted"]).astype(np.int64)
    if "propensity" not in out.columns:
        out["propensity"] = out["action"].map(out["action"].value_counts(normalize=True))
    if "revenue" not in out.columns:
        idx = out["action"].map(catalog.index).to_numpy()
        out["revenue"] = out["converted"] * catalog.values[idx] * (1 - catalog.discounts[idx])
    out["propensity"] = pd.to_numeric(out["propensity"]).astype(np.float64)
    out["revenue"] = pd.to_numeric(out["revenue"]).astype(np.float64)
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out


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
    notes = _validate(frame, catalog, min_rows, where)
    frame = _complete(frame, catalog, where)
    if features is None:
        truth_names = {f"{k}_{a}" for a in catalog.ids for k in ("net", "p", "revenue")} | {"oracle_action"}
        truth_cols = [c for c in frame.columns if c in truth_names]  # ground truth, when the file has it
        feature_cols = [c for c in frame.columns if c not in RESERVED and c not in truth_cols]
        if not feature_cols:
            raise DataError(f"{where}: no feature columns besides {sorted(RESERVED & set(frame.columns))}")
        categorical = [c for c in feature_cols if not pd.api.types.is_numeric_dtype(frame[c])]
        numeric = [c for c in feature_cols if c not in categorical]
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


def usable_log_rows(frame: pd.DataFrame, catalog: ActionCatalog) -> tuple[pd.DataFrame, str]:
    """The decision-log rows retraining can use, and what was skipped and why ("" when nothing was): rows of
    older versions or other writers may name actions the catalog no longer has, carry no valid probability,
    a non-finite or negative revenue, no customer, or features that are not a JSON object
    (``_unreadable``, set by the log's reader). One bad row is skipped and counted, never fatal."""
    checks: dict[str, np.ndarray] = {}
    action = frame["action"].astype(str)
    unknown = ~action.isin(catalog.ids).to_numpy()
    if unknown.any():
        names = ", ".join(sorted(set(action[unknown]))[:5])
        checks[f"an action the catalog no longer has ({names})"] = unknown
    prop = pd.to_numeric(frame["propensity"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    checks["no probability in (0, 1]"] = ~((prop > 0) & (prop <= 1))
    if "revenue" in frame.columns:
        rev = pd.to_numeric(frame["revenue"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        checks["a revenue that is not a finite amount >= 0"] = ~(np.isfinite(rev) & (rev >= 0))
    checks["no customer id"] = frame[ENTITY].isna().to_numpy() | (frame[ENTITY].astype(str).str.len() == 0).to_numpy()
    if "_unreadable" in frame.columns:
        checks["features that are not a JSON object"] = frame["_unreadable"].fillna(False).astype(bool).to_numpy()
    bad = np.zeros(len(frame), dtype=bool)
    parts = []
    for why, mask in checks.items():
        new = mask & ~bad
        if new.any():
            parts.append(f"{int(new.sum()):,} with {why}")
        bad |= mask
    kept = frame.loc[~bad].drop(columns=["_unreadable"], errors="ignore").reset_index(drop=True)
    if not bad.any():
        return kept, ""
    return kept, f"skipped {int(bad.sum()):,} of {len(frame):,} logged decisions: " + "; ".join(parts)


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
    notes = _validate(log, catalog, min_rows, str(log_path))
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
    frame = _complete(frame, catalog, str(log_path))
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
