"""MLflow tracking and registry on PostgreSQL through a real `mlflow server` (the scale-out configuration,
``NEXTBEST_MLFLOW_TRACKING_URI=http://...``): the training job's runs and artifacts, the registered version
@challenger, promotion to @champion, and serving loading the champion from the server and following a new
one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.settings import Settings, load_settings
from nextbest.training.config import BoosterParams, TrainConfig
from nextbest.training.jobs import TrainingOutcome, run_training

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[3]
CFG = TrainConfig(learners=("s",), grid=(BoosterParams(num_leaves=15, min_child_samples=50, max_trees=300),))
# Promotion's statistical gate is tested in tests/integration/training; here it only has to move the alias, so
# the margin lets any challenger through (a 3,000-customer world cannot always clear a zero margin).
ANY_GAIN = -1e6


@pytest.fixture(scope="module")
def module_mlflow_uris() -> Iterator[None]:
    """Tracking URIs are process-wide: point MLflow back where it was for the other tests."""
    import os

    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def home(
    mlflow_server: str, world_dir: Path, tmp_path_factory: pytest.TempPathFactory, module_mlflow_uris: None
) -> Settings:
    """The session world with its own Feast registry (offline store) and the MLflow server as the store."""
    from nextbest.features.store import apply

    settings = load_settings(
        home=tmp_path_factory.mktemp("trackhome"),
        data_dir=world_dir,
        project_dir=PROJECT,
        mlflow_tracking_uri=mlflow_server,
    )
    apply(settings)
    return settings


@pytest.fixture(scope="module")
def trained(home: Settings, catalog: ActionCatalog) -> TrainingOutcome:
    return run_training(home, catalog, CFG)


def client(settings: Settings) -> Any:
    return mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)


def test_training_run_and_artifacts_live_on_the_server(
    trained: TrainingOutcome, home: Settings, mlflow_server: str, mlflow_database: str
) -> None:
    import psycopg

    assert mlflow.get_tracking_uri() == mlflow_server
    c = client(home)
    run = c.get_run(trained.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["feature_service"] == "nba_v1" and "model_dr_value" in run.data.metrics
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied: clients need no shared disk
    children = c.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{trained.run_id}'")
    fits = {f"fit-{c.name}" for c in trained.result.candidates if c.learner != "average"}
    assert fits and all(f.startswith("fit-s-") for f in fits)  # one nested run per cross-fitted S candidate
    assert {r.info.run_name for r in children} == {"dataset", "evaluate", *fits}
    logged = {Path(a.path).name for a in c.list_artifacts(trained.run_id, "evaluation")}
    assert logged == {"test.parquet", "valid.parquet"}

    version = c.get_model_version_by_alias(CFG.model_name, "challenger")
    assert int(version.version) == trained.version == 1
    assert version.tags["feature_service"] == "nba_v1"
    # The registry really is the PostgreSQL database (not a silent local fallback).
    with psycopg.connect(mlflow_database.replace("postgresql+psycopg", "postgresql", 1)) as conn:
        aliases = conn.execute("SELECT name, alias, version FROM registered_model_aliases").fetchall()
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()
    assert (CFG.model_name, "challenger", 1) in aliases
    assert runs is not None and runs[0] == 1 + len(children)


def test_promotion_moves_champion_and_serving_loads_it_from_the_server(
    trained: TrainingOutcome, home: Settings, catalog: ActionCatalog
) -> None:
    from nextbest.model.pyfunc import predictions_frame
    from nextbest.serving.models import load_serving_model
    from nextbest.training import tracking
    from nextbest.training.promotion import promote

    decision = promote(home, catalog, CFG, margin=ANY_GAIN)
    assert decision.promoted and decision.champion_version is None, decision.reason
    c = client(home)
    assert int(c.get_model_version_by_alias(CFG.model_name, "champion").version) == trained.version
    promotions = c.search_runs(
        [c.get_experiment_by_name(CFG.experiment).experiment_id], "attributes.run_name = 'promote-v1'"
    )
    assert promotions and promotions[0].data.tags["promoted"] == "True"

    loaded = load_serving_model(home)
    assert loaded.error is None and loaded.model is not None
    assert loaded.version == str(trained.version) and loaded.source == f"models:/{CFG.model_name}@champion"
    test = tracking.logged_split(tracking.resolve_version(CFG.model_name, "champion"), "test").head(200)
    served, original = predictions_frame(loaded.model, test), predictions_frame(trained.result.model, test)
    np.testing.assert_allclose(served.to_numpy(), original.to_numpy())


def test_a_running_service_follows_a_new_champion(
    trained: TrainingOutcome, home: Settings, catalog: ActionCatalog
) -> None:
    """What every replica's watcher does after a promotion: the registry moved, the live model follows."""
    from nextbest.serving.components import Components
    from nextbest.training.promotion import promote

    components = Components(home)
    assert components.model.version == str(trained.version)
    assert components.reload_model() == (False, None)  # nothing moved
    c = client(home)
    # A second version of the same model (registering is what matters here, not another training run).
    second = mlflow.register_model(trained.model_uri, CFG.model_name)
    c.set_registered_model_alias(CFG.model_name, "challenger", second.version)
    assert components.reload_model() == (False, None)  # a new challenger is not served
    decision = promote(home, catalog, CFG, margin=ANY_GAIN)
    assert decision.promoted and decision.champion_version == trained.version
    assert components.reload_model() == (True, None)
    assert components.model.version == str(second.version) == str(trained.version + 1)
    assert int(c.get_model_version_by_alias(CFG.model_name, "previous_champion").version) == trained.version
