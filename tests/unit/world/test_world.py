"""The synthetic world: its ground truth must agree with its sampled outcomes, and it must contain the
heterogeneity that separates uplift from propensity ranking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.world.config import WorldConfig
from nextbest.world.generate import generate_world


@pytest.fixture(scope="module")
def big_world(tmp_path_factory: pytest.TempPathFactory, catalog: ActionCatalog) -> Path:
    out = tmp_path_factory.mktemp("bigworld")
    generate_world(WorldConfig(customers=60_000, seed=3, as_of="2026-10-01T00:00:00Z"), catalog, out)
    return out


def _joined(world: Path) -> pd.DataFrame:
    log = pd.read_parquet(world / "raw" / "campaign_log.parquet")
    truth = pd.read_parquet(world / "truth" / "campaign.parquet")
    return log.merge(truth, on=["customer_id", "event_timestamp"], validate="one_to_one")


def test_empirical_conversion_matches_true_probability_per_action_and_segment(big_world: Path) -> None:
    """Tolerance: 4 binomial standard errors per (action, segment) cell, plus 0.002 for rounding."""
    df = _joined(big_world)
    df["p_true"] = df.apply(lambda r: r[f"p_{r['action']}"], axis=1)
    df["segment"] = pd.qcut(df["p_no_action"], 3, labels=["low", "mid", "high"])
    cells = df.groupby(["action", "segment"], observed=True).agg(
        n=("converted", "size"), observed=("converted", "mean"), expected=("p_true", "mean")
    )
    assert len(cells) == 21 and cells["n"].min() > 500
    se = np.sqrt(cells["expected"] * (1 - cells["expected"]) / cells["n"])
    gap = (cells["observed"] - cells["expected"]).abs()
    assert (gap <= 4 * se + 0.002).all(), cells.assign(gap=gap, se=se)[gap > 4 * se + 0.002]


def test_revenue_of_converters_matches_truth(big_world: Path) -> None:
    df = _joined(big_world)
    df["rev_true"] = df.apply(lambda r: r[f"revenue_{r['action']}"], axis=1)
    observed, expected = df["revenue"].mean(), df["rev_true"].mean()
    assert abs(observed - expected) / expected < 0.03


def test_world_has_sure_things_discount_responders_and_sleeping_dogs(big_world: Path, catalog: ActionCatalog) -> None:
    truth = pd.read_parquet(big_world / "truth" / "campaign.parquet")
    net = truth[[f"net_{a}" for a in catalog.ids]].to_numpy()
    uplift = net - net[:, [0]]
    d20 = uplift[:, catalog.index["discount_20"]]
    email = uplift[:, catalog.index["email_promo"]]
    sure = truth["p_no_action"] > truth["p_no_action"].quantile(0.9)
    assert (d20[sure] < 0).mean() > 0.9  # discounts to sure things give margin away
    assert (d20 > 2.0).mean() > 0.05  # some customers respond strongly to a discount
    contacts = uplift[:, [catalog.index[a] for a in ("email_promo", "sms_reminder", "discount_10", "push_nudge")]]
    assert ((contacts < 0).all(axis=1)).mean() > 0.15  # some are hurt by every contact
    assert (truth["oracle_action"] == "no_action").mean() > 0.1
    assert (email > 0).mean() > 0.2
    # the best action differs between customers: no single action is oracle for most of them
    assert truth["oracle_action"].value_counts(normalize=True).max() < 0.4


def test_generation_is_deterministic_for_a_seed(tmp_path: Path, catalog: ActionCatalog) -> None:
    cfg = WorldConfig(customers=500, seed=5, as_of="2026-10-01T00:00:00Z")
    generate_world(cfg, catalog, tmp_path / "a")
    generate_world(cfg, catalog, tmp_path / "b")
    for table in ("raw/campaign_log.parquet", "feature_tables/order_rfm.parquet", "truth/now.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / table), pd.read_parquet(tmp_path / "b" / table))


def test_campaign_outcomes_show_up_in_later_features_only(world_dir: Path) -> None:
    """A conversion is an order after the decision time: visible in later snapshots, never at the wave."""
    log = pd.read_parquet(world_dir / "raw" / "campaign_log.parquet")
    orders = pd.read_parquet(world_dir / "raw" / "orders.parquet")
    conv = log[log["converted"] == 1].merge(orders, on="customer_id", suffixes=("_wave", "_order"))
    after = conv[(conv["event_timestamp_order"] > conv["event_timestamp_wave"])]
    within = after[after["event_timestamp_order"] <= after["event_timestamp_wave"] + pd.Timedelta(days=7)]
    assert within["customer_id"].nunique() == (log["converted"] == 1).sum()
