"""Bring-your-own training data: clear errors for bad input, and a customer-level split."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.errors import DataError
from nextbest.training.dataset import load_file, split


def frame(catalog: ActionCatalog, n: int = 1_400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "event_timestamp": pd.Timestamp("2026-10-01", tz="UTC"),
            "age": rng.integers(18, 80, n),
            "tier": rng.choice(["bronze", "gold"], n),
            "spend": rng.gamma(2, 30, n),
            "action": np.array(catalog.ids)[np.arange(n) % len(catalog.ids)],
            "converted": rng.integers(0, 2, n),
            "revenue": 0.0,
            "propensity": 1 / len(catalog.ids),
        }
    )


def write(df: pd.DataFrame, tmp_path: Path, kind: str = "parquet") -> Path:
    path = tmp_path / f"data.{kind}"
    if kind == "parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_valid_file_loads_with_numeric_and_categorical_features(
    catalog: ActionCatalog, tmp_path: Path, kind: str
) -> None:
    ds = load_file(write(frame(catalog), tmp_path, kind), catalog)
    assert ds.numeric == ["age", "spend"] and ds.categorical == ["tier"]
    assert len(ds.fingerprint) == 16 and ds.truth is None
    assert ds.rewards(catalog).shape == (1_400,)


def test_optional_columns_are_filled_and_noted(catalog: ActionCatalog, tmp_path: Path) -> None:
    df = frame(catalog).drop(columns=["revenue", "propensity"])
    ds = load_file(write(df, tmp_path), catalog)
    assert any("propensity" in n for n in ds.notes) and any("revenue" in n for n in ds.notes)
    assert np.allclose(ds.frame["propensity"], 1 / len(catalog.ids))
    d20 = ds.frame[(ds.frame["action"] == "discount_20") & (ds.frame["converted"] == 1)]
    assert np.allclose(d20["revenue"], catalog.by_id["discount_20"].value * 0.8)


def test_columns_read_as_ground_truth_are_named_in_the_notes(catalog: ActionCatalog, tmp_path: Path) -> None:
    df = frame(catalog)
    df["p_discount_20"] = 0.3  # the synthetic world's truth convention, or a customer's own score
    ds = load_file(write(df, tmp_path), catalog)
    assert "p_discount_20" not in ds.numeric
    assert any("p_discount_20" in n and "ground truth" in n for n in ds.notes)
    assert not any("ground truth" in n for n in load_file(write(frame(catalog), tmp_path), catalog).notes)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns=["action"]), "missing required column(s) ['action']"),
        (lambda d: d.drop(columns=["converted", "revenue"]), "no outcome column"),
        (
            lambda d: d.assign(action=d["action"].replace("email_promo", "carrier_pigeon")),
            "unknown action(s) ['carrier_pigeon']",
        ),
        (
            lambda d: d.assign(propensity=np.where(d.index == 5, 1.5, d["propensity"])),
            "propensity' must be in (0, 1]; row 5",
        ),
        (lambda d: d.assign(propensity=np.where(d.index == 7, 0.0, d["propensity"])), "row 7"),
        (lambda d: d[(d["action"] != "push_nudge") | (d.index < 400)], "too few rows per action"),
        (lambda d: d.assign(converted=2), "'converted' must be 0 or 1"),
        (lambda d: d[d["action"] != "no_action"], "no rows with the control action"),
        (lambda d: d.assign(revenue=np.where(d.index == 3, np.inf, 0.0)), "'revenue' must be a finite number"),
        (lambda d: d.assign(revenue=np.where(d.index == 3, np.nan, 0.0)), "'revenue' must be a finite number"),
        # A log with almost no outcomes (retraining too early): what was found and what is needed.
        (
            lambda d: d.assign(converted=np.where(d.index < 3, 1, 0)),
            "3 of 1,400 rows converted; learning needs at least",
        ),
        (lambda d: d.assign(converted=1), "1,400 of 1,400 rows converted"),
        (  # revenue only where the 3 conversions are: no more of an outcome than the conversions
            lambda d: d.assign(converted=np.where(d.index < 3, 1, 0), revenue=np.where(d.index < 3, 5.0, 0.0)),
            "3 of 1,400 rows converted",
        ),
        (lambda d: d.drop(columns=["converted"]).assign(revenue=5.0), "'revenue' is the same in every row"),
    ],
)
def test_bad_input_names_the_problem(catalog: ActionCatalog, tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    path = write(mutate(frame(catalog)), tmp_path)
    with pytest.raises(DataError) as err:
        load_file(path, catalog)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_continuous_outcome_loads_without_converted(catalog: ActionCatalog, tmp_path: Path) -> None:
    """Revenue alone (a spend, a margin that can be negative) is an outcome: converted = revenue > 0."""
    df = frame(catalog).drop(columns=["converted", "event_timestamp"])
    df["revenue"] = np.random.default_rng(1).normal(0.5, 2.0, len(df))
    ds = load_file(write(df, tmp_path), catalog)
    assert (ds.frame["converted"] == (df["revenue"] > 0).astype(int).to_numpy()).all()
    assert any("negative revenue" in n for n in ds.notes) and any("'converted'" in n for n in ds.notes)
    assert any("event_timestamp" in n for n in ds.notes)


def test_missing_or_unreadable_file(catalog: ActionCatalog, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_file(tmp_path / "nope.parquet", catalog)
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="cannot read"):
        load_file(bad, catalog)


def test_split_is_by_customer_and_deterministic(catalog: ActionCatalog, tmp_path: Path) -> None:
    df = pd.concat([frame(catalog), frame(catalog, seed=1)])  # every customer twice
    ds = load_file(write(df, tmp_path), catalog)
    parts = split(ds, 0.5, 0.2, seed=3)
    ids = {k: set(v.frame["customer_id"]) for k, v in parts.items()}
    assert not (ids["train"] & ids["test"]) and not (ids["valid"] & ids["test"]) and not (ids["train"] & ids["valid"])
    assert sum(len(v.frame) for v in parts.values()) == len(df)
    assert 0.4 < len(parts["test"].frame) / len(df) < 0.6
    again = split(ds, 0.5, 0.2, seed=3)
    assert again["test"].frame["customer_id"].tolist() == parts["test"].frame["customer_id"].tolist()


def test_an_action_absent_from_the_data_is_learned_through_its_descriptors(
    catalog: ActionCatalog, tmp_path: Path
) -> None:
    """A live policy's log can miss an action entirely (rarely explored, always suppressed): with no minimum
    the set loads with a note, the S-learner trains and every action is still scored; the control is required."""
    from nextbest.training.config import BoosterParams, TrainConfig
    from nextbest.training.evaluation import score
    from nextbest.training.pipeline import train

    absent = next(a for a in catalog.ids if a != catalog.control)
    df = frame(catalog, n=3_000)
    df = df[df["action"] != absent]
    ds = load_file(write(df, tmp_path), catalog, min_rows=0)
    assert any(absent in note and "descriptors" in note for note in ds.notes)
    cfg = TrainConfig(
        learners=("s", "t"), grid=(BoosterParams(num_leaves=7, min_child_samples=20),), min_rows_per_action=0
    )
    result = train(ds, catalog, cfg)
    scored = score(result.model, split(ds, 0.3, 0.25, 0)["test"], catalog)
    assert scored.p.shape[1] == len(catalog.ids) and np.isfinite(scored.p).all()
    with pytest.raises(DataError, match="control"):
        load_file(write(df[df["action"] != catalog.control], tmp_path), catalog, min_rows=0)


def test_columns_that_cannot_be_features_are_left_out_and_named(catalog: ActionCatalog, tmp_path: Path) -> None:
    """A customer's export holds more than features: a sign-up date (timestamps became a categorical with a
    level per day), tags (a list column failed with "unhashable type: 'list'"), an e-mail address (a
    vocabulary as large as the log, carried by the model). Each is left out, with one note naming them."""
    df = frame(catalog)
    n = len(df)
    df["signup"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) % 700, unit="D")
    df["tags"] = [["vip", "app"] if i % 3 else ["app"] for i in range(n)]
    df["email"] = [f"user{i}@example.com" for i in range(n)]
    df["zip"] = [f"{i % 90:05d}" for i in range(n)]  # 90 areas: a categorical, not an identifier
    df["balance"] = [Decimal(i) / 7 for i in range(n)]  # a DECIMAL column: numbers held as objects
    ds = load_file(write(df, tmp_path), catalog)
    assert ds.numeric == ["age", "spend", "balance"] and ds.categorical == ["tier", "zip"]
    (note,) = [n for n in ds.notes if "not used as features" in n]
    assert "'signup' (timestamps" in note and "'tags' (lists" in note and "'email' (1,400 distinct values" in note
    csv = load_file(write(df.drop(columns=["tags"]), tmp_path, "csv"), catalog)  # dates as ISO 8601 text
    assert "signup" not in csv.features and any("'signup' (timestamps" in n for n in csv.notes)
    only = df[["customer_id", "action", "converted", "revenue", "propensity", "signup", "email"]]
    with pytest.raises(DataError, match=r"no feature columns.*'signup' \(timestamps"):
        load_file(write(only, tmp_path), catalog)


def test_every_row_converted_is_an_outcome_when_revenue_varies(catalog: ActionCatalog, tmp_path: Path) -> None:
    """converted = 1 on every row with a spend that varies: the spend is the outcome to learn (rejected as
    "no row that did not convert" before); with a constant revenue it is still rejected (above)."""
    df = frame(catalog).assign(converted=1, revenue=np.random.default_rng(2).gamma(2.0, 20.0, 1_400))
    ds = load_file(write(df, tmp_path), catalog)
    assert ds.frame["converted"].min() == 1 and ds.frame["revenue"].nunique() > 1000
