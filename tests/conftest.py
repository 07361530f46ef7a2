"""Shared fixtures: a small synthetic world, settings pointing at a temp home, and a Feast store on them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nextbest.core.catalog import ActionCatalog, load_catalog
from nextbest.settings import Settings, load_settings
from tests.support.disks import small_disk_at
from tests.support.servers import require_postgres

PROJECT = Path(__file__).resolve().parents[1]
TEST_CUSTOMERS = 3_000


@pytest.fixture(scope="session")
def catalog() -> ActionCatalog:
    return load_catalog(PROJECT / "catalog" / "actions.yaml")


@pytest.fixture(scope="session")
def as_of() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory, catalog: ActionCatalog, as_of: datetime) -> Path:
    from nextbest.world.config import WorldConfig
    from nextbest.world.generate import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(WorldConfig(customers=TEST_CUSTOMERS, seed=11, as_of=as_of), catalog, out)
    return out


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, world_dir: Path) -> Settings:
    home = tmp_path_factory.mktemp("home")
    return load_settings(home=home, data_dir=world_dir, project_dir=PROJECT)


@pytest.fixture(scope="session")
def feature_store(settings: Settings, as_of: datetime):  # type: ignore[no-untyped-def]
    """A Feast store with the repository applied and the world materialized up to ``as_of``."""
    from nextbest.features.store import apply, materialize, open_store

    apply(settings)
    materialize(settings, end=as_of)
    return open_store(settings)


@pytest.fixture(scope="session")
def champion(settings: Settings, feature_store, catalog: ActionCatalog):  # type: ignore[no-untyped-def]
    """A model trained on the session world through Feast, registered and aliased ``@champion``."""
    import mlflow

    from nextbest.training.config import BoosterParams, TrainConfig
    from nextbest.training.jobs import run_training

    cfg = TrainConfig(learners=("s",), grid=(BoosterParams(num_leaves=15, min_child_samples=50, max_trees=300),))
    outcome = run_training(settings, catalog, cfg)
    mlflow.MlflowClient().set_registered_model_alias(cfg.model_name, "champion", str(outcome.version))
    return outcome


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A reachable PostgreSQL server (``NEXTBEST_TEST_POSTGRES_URL``); fails under CI=true, else skips."""
    return require_postgres()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system of 1 MiB that fills up (a tmpfs; fails under CI=true when it cannot be mounted)."""
    with small_disk_at(tmp_path) as mount:
        yield mount
