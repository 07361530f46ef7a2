"""The columns of logged decisions, whatever their source (a file, the campaign log, the service's decision log):
which are required and which may be missing, checking a frame of them, filling in what is missing, customer
ids in their canonical form, and which decision-log rows retraining can use. ``training.dataset`` builds
training sets from them."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from nextbest.core.catalog import ActionCatalog
from nextbest.core.features import ENTITY, REQUEST_TS
from nextbest.core.ids import InvalidCustomerId, canonical_customer_ids
from nextbest.errors import DataError

REQUIRED = (ENTITY, "action")
OUTCOMES = ("converted", "revenue")  # at least one
MIN_OUTCOMES = 10  # converted rows, and rows that did not convert, below which nothing can be learned
OPTIONAL = ("event_timestamp", "revenue", "propensity", "converted")
RESERVED = frozenset((*REQUIRED, *OPTIONAL, REQUEST_TS, "campaign_id", "split"))
MIN_IDENTIFIER_LEVELS = 100  # text with more distinct values than this and than half the rows is an identifier
MAX_LEVEL_SHARE = 0.5


def validate_decisions(frame: pd.DataFrame, catalog: ActionCatalog, min_rows: int, where: str) -> list[str]:
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
        if min(converted, len(frame) - converted) < MIN_OUTCOMES and not _revenue_varies(frame, conv):
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


def _revenue_varies(frame: pd.DataFrame, conv: pd.Series) -> bool:
    """Whether revenue carries an outcome of its own where nearly every row converted (a spend above 0 on
    every row) or nearly none did: it varies among the rows of the larger class."""
    if "revenue" not in frame.columns:
        return False
    larger = conv == (1 if 2 * conv.sum() >= len(conv) else 0)
    return bool(pd.to_numeric(frame["revenue"], errors="coerce")[larger].nunique() > 1)


def feature_columns(frame: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(numeric, categorical, notes): which of a file's other ``columns`` are features, and of what kind.
    Numbers and booleans are numeric, text and categories categorical. Left out, with a note saying why:
    timestamps (an absolute date says nothing a model can use on next month's customers; an age in days
    does), lists and records, and text with a value for nearly every row (an e-mail address, an order id:
    a vocabulary as large as the log, carried by the model, that generalises to no new customer)."""
    numeric: list[str] = []
    categorical: list[str] = []
    left_out: list[str] = []
    for name in columns:
        column = frame[name]
        if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column) or _iso(column):
            left_out.append(f"{name!r} (timestamps: give an age or a duration in days instead)")
        elif pd.api.types.is_numeric_dtype(column) or _numbers(column):
            numeric.append(name)
        elif (values := column.dropna()).map(lambda v: isinstance(v, list | tuple | dict | set | np.ndarray)).any():
            left_out.append(f"{name!r} (lists or records)")
        else:
            levels = int(values.astype(str).nunique())
            if levels > MIN_IDENTIFIER_LEVELS and levels > MAX_LEVEL_SHARE * len(frame):
                left_out.append(f"{name!r} ({levels:,} distinct values in {len(frame):,} rows: an identifier?)")
            else:
                categorical.append(name)
    notes = [f"not used as features: {', '.join(left_out)}"] if left_out else []
    return numeric, categorical, notes


def _numbers(column: pd.Series) -> bool:
    """Numbers held as objects (a database's DECIMAL read from parquet): numeric, not text."""
    values = column.dropna()
    if column.dtype != object or values.empty or not _is_number(values.iloc[0]):
        return False
    return bool(values.map(_is_number).all())


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool | complex)


def _iso(column: pd.Series, sample: int = 200) -> bool:
    """Text holding ISO 8601 timestamps (a CSV's dates): its first ``sample`` values all parse as such."""
    if column.dtype != object:
        return False
    head = column.dropna().head(sample)
    if head.empty or not head.map(lambda v: isinstance(v, str)).all():
        return False
    return bool(pd.to_datetime(head, errors="coerce", format="ISO8601", utc=True).notna().all())


def customer_ids(column: pd.Series, where: str) -> list[str]:
    """A column of customer ids in their canonical (string) form: 42 and "42" are one customer in every split."""
    try:
        return canonical_customer_ids(column.to_numpy())
    except InvalidCustomerId as exc:
        raise DataError(f"{where}: column {ENTITY!r}: {exc}") from None


def complete_decisions(frame: pd.DataFrame, catalog: ActionCatalog, where: str = "data") -> pd.DataFrame:
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
