"""The closed loop's mechanics on the session world: a weak champion serves, outcomes drawn from the ground truth
come back as feedback, the service's own log trains a challenger, the gate decides, and the next round is
served by whatever the registry then calls champion, reloaded without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from nextbest.core.catalog import ActionCatalog
from nextbest.io.decision_log import open_decision_log
from nextbest.serving.app import create_app
from nextbest.serving.runtime import build_runtime
from nextbest.settings import Settings, load_settings
from nextbest.training.config import BoosterParams, TrainConfig
from nextbest.training.loop import LoopConfig, run_loop, weak_start

SMALL = TrainConfig(learners=("s",), grid=(BoosterParams(num_leaves=7, min_child_samples=20),), min_rows_per_action=0)


@pytest.fixture(scope="module")
def loop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("loop")


@pytest.fixture(scope="module")
def loop_settings(settings: Settings, feature_store: Any, loop_dir: Path) -> Iterator[Settings]:
    """The session world and feature store, with a registry and a decision log of the loop's own."""
    import mlflow

    own = load_settings(
        home=settings.home, data_dir=settings.data_dir, project_dir=settings.project_dir,
        mlflow_tracking_uri=f"sqlite:///{loop_dir / 'mlflow.db'}",
        decision_log_url=f"sqlite:///{loop_dir / 'decisions.db'}",
        serving={"exploration_rate": 0.1, "control_group_share": 0.02, "reload_interval_s": 0},
    )  # fmt: skip
    yield own
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)  # other tests use the session registry


def champion_version(settings: Settings, name: str) -> str:
    import mlflow

    return str(mlflow.MlflowClient(settings.mlflow_tracking_uri).get_model_version_by_alias(name, "champion").version)


def test_two_rounds_learn_from_the_log_and_reload_the_gate_s_choice(
    loop_settings: Settings, catalog: ActionCatalog
) -> None:
    cfg = LoopConfig(rounds=2, decisions=1_200, weak_rows=300, batch_size=400, seed=3)
    weak = weak_start(loop_settings, catalog, cfg, lambda _: None)
    runtime = build_runtime(loop_settings)
    app = create_app()
    app.state.runtime = runtime
    champions: list[str] = []

    def note(message: str) -> None:
        if "retrain" in message:
            champions.append(champion_version(loop_settings, SMALL.model_name))

    with TestClient(app) as client:
        report = run_loop(loop_settings, catalog, cfg, client, note, retrain_cfg=SMALL)
        final_champion = champion_version(loop_settings, SMALL.model_name)

    first, second = report.rounds
    assert first.model_version == str(weak) and first.decisions == second.decisions == 1_200
    # Each round's retraining registered a challenger and the gate gave its reason.
    assert all(r.gate.startswith(f"challenger v{weak + i + 1} vs ") for i, r in enumerate(report.rounds))
    # Round 2 is served by the champion the registry named after round 1 (reloaded when the gate promoted).
    assert second.model_version == (str(weak + 1) if first.promoted else str(weak))
    assert champions[0] == str(weak)
    assert final_champion == (str(weak + 2) if second.promoted else second.model_version)
    for r in report.rounds:
        assert r.no_action_value <= r.eligible_oracle_value <= r.oracle_value + 1e-9
        assert r.true_value <= r.eligible_oracle_value + 1e-9
        # value-aware exploration at rate 0.1: near-ties explored most, so fewer than 10% served off-greedy
        assert 0.0 < r.exploration_share < 0.1 and r.degraded_share == 0.0
        # Both greedy policies were valued by the truth on the round's customers, within the guardrails.
        assert r.champion_policy_value is not None and r.challenger_policy_value is not None
        assert r.champion_policy_value <= r.eligible_oracle_value + 1e-9
        assert r.challenger_policy_value <= r.eligible_oracle_value + 1e-9
    # Every decision was logged once, its outcome joined: conversions as drawn from the truth.
    with open_decision_log(loop_settings.decision_log_url or "") as log:
        rows = log.training_rows()
    assert len(rows) == 2_400 and len({r["decision_id"] for r in rows}) == 2_400
    assert sum(r["converted"] for r in rows) == first.conversions + second.conversions
    assert np.all([0 < r["propensity"] <= 1 for r in rows])
