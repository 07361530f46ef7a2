"""Upgrading a feature store from integer customer keys: a registry applied by the previous version (INT64 entity)
is reported, not read silently as empty; `features apply` says to re-key; feature tables that still key customers
by integers (a world generated before string ids) materialize under string keys and train point-in-time correct."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.core.features import ENTITY
from nextbest.settings import Settings, load_settings
from nextbest.training.config import TrainConfig

PROJECT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def old_world(tmp_path_factory: pytest.TempPathFactory, catalog: ActionCatalog, as_of: datetime) -> Settings:
    """A small world whose feature tables key customers by int64, as `nextbest data generate` wrote them before."""
    from nextbest.world.config import WorldConfig
    from nextbest.world.generate import generate_world

    root = tmp_path_factory.mktemp("intkeys")
    settings = load_settings(home=root / "home", data_dir=root / "data", project_dir=PROJECT)
    assert settings.data_dir is not None
    generate_world(WorldConfig(customers=600, seed=5, as_of=as_of), catalog, settings.data_dir)
    for path in (settings.data_dir / "feature_tables").glob("*.parquet"):
        table = pq.read_table(path)
        ids = pa.array(np.asarray(table.column(ENTITY).to_pylist(), dtype=np.int64))
        pq.write_table(table.set_column(table.schema.get_field_index(ENTITY), ENTITY, ids), path)
    return settings


def test_an_int64_registry_is_reported_and_apply_says_to_rekey(
    old_world: Settings, as_of: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast import Entity, ValueType

    from nextbest.features import entities
    from nextbest.features.online import OnlineFeatureReader
    from nextbest.features.store import apply, materialize, open_store, source_key_kind

    assert source_key_kind(old_world.data_dir) == "integer"  # type: ignore[arg-type]
    with monkeypatch.context() as m:  # the previous release's entity
        m.setattr(entities, "customer", lambda: Entity(name="customer", join_keys=[ENTITY], value_type=ValueType.INT64))
        apply(old_world)
    reader = OnlineFeatureReader(open_store(old_world), "nba_v1")
    assert reader.key_problem is not None and "INT64" in reader.key_problem and "materialize" in reader.key_problem

    notes: list[str] = []
    apply(old_world, notes=notes)
    assert len(notes) == 1 and "nextbest features materialize" in notes[0]
    again: list[str] = []
    apply(old_world, notes=again)
    assert again == []  # said once: the entity is a STRING now
    materialize(old_world, end=as_of)
    reader = OnlineFeatureReader(open_store(old_world), "nba_v1")
    assert reader.key_problem is None
    rows = reader.read(["12", 13, "C12"], now=as_of.timestamp() + 60)
    assert [r.customer_id for r in rows] == ["12", "13", "C12"]
    assert rows[0].complete and rows[1].complete and not rows[2].found  # integer rows keyed by their text


def test_integer_keyed_tables_train_point_in_time_correct(old_world: Settings, catalog: ActionCatalog) -> None:
    from nextbest.features.store import apply
    from nextbest.training.jobs import build_dataset
    from nextbest.world.outcome import true_response

    apply(old_world)
    ds = build_dataset(old_world, catalog, TrainConfig(min_rows_per_action=10), None)
    frame = ds.frame
    assert len(frame) == 600 and all(type(c) is str for c in frame[ENTITY])
    state = {c: frame[c].to_numpy(dtype=float if frame[c].dtype.kind in "iuf" else object) for c in frame.columns}
    assert ds.truth is not None
    np.testing.assert_allclose(true_response(state, catalog).net, ds.truth.to_numpy(), atol=1e-8)
