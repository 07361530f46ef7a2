"""The training job end to end on a temp Feast store and a temp MLflow store: point-in-time training set,
tracked runs, registry aliases, re-evaluation and the promotion gate."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.settings import Settings, load_settings
from nextbest.training import tracking
from nextbest.training.config import BoosterParams, TrainConfig
from nextbest.training.jobs import TrainingOutcome, build_dataset, run_evaluation, run_training
from nextbest.training.promotion import promote
from nextbest.world.outcome import true_response

PROJECT = Path(__file__).resolve().parents[3]
CFG = TrainConfig(learners=("s", "t"), grid=(BoosterParams(num_leaves=15, min_child_samples=100),))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, catalog: ActionCatalog) -> Settings:
    """A 40k-customer world with the Feast repository applied (offline store only) and an empty MLflow."""
    from nextbest.features.store import apply
    from nextbest.world.config import WorldConfig
    from nextbest.world.generate import generate_world

    root = tmp_path_factory.mktemp("trainhome")
    settings = load_settings(home=root, project_dir=PROJECT)
    assert settings.data_dir is not None
    as_of = datetime(2026, 10, 1, tzinfo=UTC)
    generate_world(WorldConfig(customers=40_000, seed=21, as_of=as_of), catalog, settings.data_dir)
    apply(settings)
    return settings


@pytest.fixture(scope="module")
def trained(home: Settings, catalog: ActionCatalog) -> TrainingOutcome:
    return run_training(home, catalog, CFG)


def test_training_set_is_point_in_time_correct(home: Settings, catalog: ActionCatalog) -> None:
    """The true response recomputed from the training set's features equals the generator's ground truth:
    a leaked post-decision row (the campaign's own conversion order or contact) would change it."""
    ds = build_dataset(home, catalog, CFG, None)
    frame = ds.frame
    state = {c: frame[c].to_numpy(dtype=float if frame[c].dtype.kind in "iuf" else object) for c in frame.columns}
    recomputed = true_response(state, catalog).net
    assert ds.truth is not None
    np.testing.assert_allclose(recomputed, ds.truth.to_numpy(), atol=1e-8)
    assert ds.feature_service == "nba_v1" and len(frame) == 40_000


def test_run_is_tracked_with_nested_steps_artifacts_and_tags(trained: TrainingOutcome, home: Settings) -> None:
    client = mlflow.MlflowClient()
    parent = client.get_run(trained.run_id)
    artifacts = Path(parent.info.artifact_uri.removeprefix("file://"))
    assert artifacts.is_relative_to(home.home), artifacts  # under NEXTBEST_HOME, not ./mlruns of the cwd
    assert parent.data.tags["feature_service"] == "nba_v1"
    assert parent.data.tags["data_fingerprint"] == trained.result.fingerprint
    assert "model_dr_value" in parent.data.metrics and "propensity_auc" in parent.data.metrics
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{trained.run_id}'")
    # order values vary in the world: each learner is cross-fitted for P(convert) and for net value
    fits = {"fit-s-0", "fit-t-0", "fit-s-revenue-0", "fit-t-revenue-0"}
    assert {r.info.run_name for r in children} == {"dataset", *fits, "evaluate"}
    evaluate_run = next(r for r in children if r.info.run_name == "evaluate")
    plots = {Path(a.path).name for a in client.list_artifacts(evaluate_run.info.run_id, "plots")}
    assert {"qini_curves.png", "calibration.png", "decision_mix.png", "feature_importance.png"} <= plots
    assert {Path(a.path).name for a in client.list_artifacts(trained.run_id, "evaluation")} == {
        "test.parquet",
        "valid.parquet",
    }


def test_version_is_challenger_and_loads_natively_and_as_pyfunc(trained: TrainingOutcome) -> None:
    version = tracking.resolve_version(CFG.model_name, "challenger")
    assert int(version.version) == trained.version
    assert version.tags["feature_service"] == "nba_v1"
    model, _ = tracking.load_version(CFG.model_name, "challenger")
    frame = trained.result.splits["test"].frame.head(50)
    p, revenue = model.predict(model.encoder.transform_frame(frame))
    pyfunc = mlflow.pyfunc.load_model(f"models:/{CFG.model_name}@challenger")
    inputs = frame[list(model.feature_names)].astype({c: "float64" for c in model.encoder.numeric})
    out = pyfunc.predict(inputs)  # the signature takes numeric features as doubles (they may be missing)
    np.testing.assert_allclose(out[[f"p_{a}" for a in model.action_ids]].to_numpy(), p, rtol=1e-9)
    assert pyfunc.metadata.get_input_schema().input_names() == list(model.feature_names)
    assert revenue.shape == (50, len(model.action_ids))
    np.testing.assert_allclose(out[[f"revenue_{a}" for a in model.action_ids]].to_numpy(), revenue, rtol=1e-9)


def test_the_registered_model_was_refitted_on_every_row(trained: TrainingOutcome) -> None:
    """Cross-fitting evaluates every row out of fold, so no row is held back from the final model: the
    registered version was trained on all 40,000 campaign rows (before: 40%, the rest kept for evaluation
    and early stopping), and its evaluation covered all of them."""
    model, record = tracking.load_version(CFG.model_name, str(trained.version))
    assert model.metadata["training_rows"] == 40_000 == trained.result.sizes["train"]
    assert trained.result.report.n == 40_000
    run = mlflow.MlflowClient().get_run(record.run_id)
    assert run.data.params["training_rows"] == "40000"


def test_reevaluation_reproduces_the_training_report(
    home: Settings, catalog: ActionCatalog, trained: TrainingOutcome
) -> None:
    report = run_evaluation(home, catalog, CFG, str(trained.version))
    assert report.policies["model"]["dr"]["value"] == pytest.approx(
        trained.result.report.policies["model"]["dr"]["value"]
    )


def _register_variant(trained: TrainingOutcome, margin: float) -> int:
    """Register a copy of the trained model with another decision margin, with the same evaluation rows."""
    model, record = tracking.load_version(CFG.model_name, str(trained.version))
    model.decision_margin = margin
    with mlflow.start_run(run_name=f"variant-margin-{margin:g}"):
        for split in ("test", "valid"):
            path = mlflow.artifacts.download_artifacts(
                run_id=record.run_id, artifact_path=f"evaluation/{split}.parquet"
            )
            mlflow.log_artifact(path, artifact_path="evaluation")
        frame: pd.DataFrame = trained.result.splits["test"].frame
        _, version = tracking.log_policy_model(model, frame, CFG.model_name, {"variant": f"margin={margin:g}"})
    return version


def test_promotion_gate_promotes_a_better_model_and_refuses_a_worse_one(
    home: Settings, catalog: ActionCatalog, trained: TrainingOutcome
) -> None:
    first = promote(home, catalog, CFG)
    assert first.promoted, first.reason  # the model beats doing nothing by far more than the noise
    assert "no champion yet" in first.reason and first.difference["ci_low"] > 0
    assert int(tracking.resolve_version(CFG.model_name, "champion").version) == trained.version

    worse = _register_variant(trained, margin=1e6)  # never acts: doing nothing for everyone
    decision = promote(home, catalog, CFG)
    assert not decision.promoted
    assert decision.challenger_version == worse and decision.champion_version == trained.version
    assert "not promoted" in decision.reason and decision.difference["ci_high"] < 0
    assert int(tracking.resolve_version(CFG.model_name, "champion").version) == trained.version

    same = _register_variant(trained, margin=trained.result.model.decision_margin)  # identical decisions
    tie = promote(home, catalog, CFG)
    assert not tie.promoted and tie.difference["value"] == pytest.approx(0.0, abs=1e-9)
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.promoted = 'False'")
    assert len(runs) >= 2 and same > worse


def test_quality_beats_baselines_on_the_world(trained: TrainingOutcome) -> None:
    """Even at 16k training rows the uplift policy beats propensity-only ranking and the best single action
    on the ground truth, and rarely gives anyone an action worse than nothing."""
    policies: dict[str, Any] = trained.result.report.policies
    model = policies["model"]
    assert model["true_value"] > policies["propensity_only"]["true_value"]
    assert model["true_value"] > policies["best_single_action"]["true_value"]
    assert model["lift_capture"] > 0.5
    assert model["share_worse_than_nothing"] < 0.3
