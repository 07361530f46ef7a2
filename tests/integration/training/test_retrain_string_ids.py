"""``nextbest retrain`` on a decision log whose customers have string ids (CRM ids and UUIDs): the decisions and
their feedback are read back, split by customer and learned from, and the held-out rows carry the same ids."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from nextbest.core.catalog import ActionCatalog
from nextbest.core.features import ENTITY, model_features
from nextbest.io.decision_log import DecisionRecord, FeedbackRecord, open_decision_log
from nextbest.settings import Settings
from nextbest.training.config import TrainConfig
from nextbest.training.jobs import build_dataset
from tests.cli.test_cli_errors import run_cli


def _string_id(customer: str) -> str:
    n = int(customer)
    return f"CRM-{n:06d}" if n % 2 else str(uuid.uuid5(uuid.NAMESPACE_URL, f"customer/{n}"))


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value


def test_retrain_reads_string_id_decisions_back_from_the_log(
    settings: Settings, feature_store: Any, catalog: ActionCatalog, tmp_path: Path
) -> None:
    frame = build_dataset(settings, catalog, TrainConfig(), None).frame  # the session world, point in time
    names = model_features("nba_v1")
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    ids = {c: _string_id(c) for c in frame[ENTITY].unique()}
    with open_decision_log(url) as log:
        for i, row in enumerate(frame.to_dict("records")):
            at = row["event_timestamp"].timestamp()
            action = row["action"]
            rec = DecisionRecord(
                f"d{i}", None, ids[row[ENTITY]], at, "any", action,
                None if action == catalog.control else catalog.delivery_channel("any", action),
                float(row["propensity"]), False, False, False, None, "1", "rules", catalog.content_hash, "nba_v1",
                features={n: _plain(row[n]) for n in names},
            )  # fmt: skip
            assert log.record_decision(rec)[1]
            if row["converted"]:
                log.record_feedback(FeedbackRecord(f"f{i}", f"d{i}", rec.customer_id, at + 60, "conversion", 50.0))
        assert {r["customer_id"] for r in log.training_rows()} == set(ids.values())
        # Rows of older versions or foreign writers: skipped and counted, never fatal
        some = next(iter(ids.values()))
        bad = [
            DecisionRecord("bad-action", None, some, 1.0, "any", "retired_promo", "email", 0.5, False, False, False,
                           None, "0", "rules", "old", "nba_v1", features={"recency_days": 3}),
            DecisionRecord("bad-features", None, some, 2.0, "any", catalog.control, None, 0.5, False, False, False,
                           None, "0", "rules", "old", "nba_v1", features=[1, 2, 3]),  # type: ignore[arg-type]
            DecisionRecord("bad-revenue", None, some, 3.0, "any", catalog.control, None, 0.5, False, False, False,
                           None, "0", "rules", "old", "nba_v1", features={"recency_days": 3}),
        ]  # fmt: skip
        for rec in bad:
            assert log.record_decision(rec)[1]
        log.record_feedback(FeedbackRecord("bad-fb", "bad-revenue", some, 4.0, "conversion", float("inf")))

    home = tmp_path / "home"
    result = run_cli(["retrain", "--no-promote"], home, NEXTBEST_DECISION_LOG_URL=url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"retrained on {len(frame):,} logged decisions" in result.stdout
    assert f"skipped 3 of {len(frame) + 3:,} logged decisions" in " ".join(result.stdout.split()), result.stdout
    assert "retired_promo" in result.stdout and "not a JSON object" in " ".join(result.stdout.split())
    held = pd.concat([pd.read_parquet(p) for p in home.rglob("test.parquet")], ignore_index=True)
    assert len(held) > 0.2 * len(frame)
    assert set(held[ENTITY]) <= set(ids.values())
    assert held[ENTITY].str.startswith("CRM-").any() and held[ENTITY].str.len().eq(36).any()  # both kinds
