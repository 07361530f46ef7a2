"""The dask backend's early stopping is LightGBM's: the same metric and the same stopping rule, computed on
the whole validation set (lightgbm.dask's own ``eval_set`` metric covers one worker's shard only). And the
backend is chosen by configuration, with misconfigurations rejected."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from nextbest.errors import ConfigError
from nextbest.training.config import TrainConfig, load_train_config
from nextbest.training.distributed import VALID_NAME, active_fitter, stopping_callbacks, training_backend

PARAMS = {"learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 40, "verbosity": -1, "deterministic": True}


def _data(n: int, seed: int, objective: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    signal = X[:, 0] - 0.5 * X[:, 1] * X[:, 2]
    y = (
        (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(float)
        if objective == "binary"
        else signal + rng.normal(size=n)
    )
    return X, y, rng.uniform(0.5, 2.0, n)  # weighted, as the S- and T-learners' validation sets are


@pytest.mark.parametrize("objective", ["binary", "regression"])
def test_stopping_callbacks_are_lightgbms_early_stopping(objective: str) -> None:
    """The same fit stopped by ``lgb.early_stopping`` and by the dask backend's callbacks (here in process):
    the same validation curve, the same best iteration, the same trees."""
    (X, y, w), (Xv, yv, wv) = _data(4_000, 3, objective), _data(1_500, 4, objective)
    params = {"objective": objective, **PARAMS}
    train = lgb.Dataset(X, y, weight=w, free_raw_data=False)
    history: dict[str, dict[str, list[float]]] = {}
    reference = lgb.train(
        params,
        train,
        400,
        valid_sets=[lgb.Dataset(Xv, yv, weight=wv, reference=train)],
        valid_names=[VALID_NAME],
        callbacks=[lgb.early_stopping(20, verbose=False), lgb.record_evaluation(history)],
    )
    callbacks = stopping_callbacks((Xv, yv, wv), rounds=20)
    ours = lgb.train(params, train, 400, valid_sets=[], callbacks=callbacks)
    assert 0 < reference.best_iteration < 380  # it did stop early
    assert ours.best_iteration == reference.best_iteration
    assert ours.model_to_string().split("parameters:")[0] == reference.model_to_string().split("parameters:")[0]
    (curve,) = history[VALID_NAME].values()
    assert callbacks[1].curve == curve and len(curve) == reference.best_iteration + 20


def test_stopping_at_max_trees_keeps_the_best() -> None:
    (X, y, w), (Xv, yv, wv) = _data(2_000, 5, "binary"), _data(800, 6, "binary")
    callbacks = stopping_callbacks((Xv, yv, wv), rounds=50)
    booster = lgb.train({"objective": "binary", **PARAMS}, lgb.Dataset(X, y, weight=w), 15, callbacks=callbacks)
    curve = callbacks[1].curve
    assert len(curve) == 15 and booster.best_iteration == int(np.argmin(curve)) + 1


def test_backend_is_configuration(tmp_path: Path) -> None:
    assert TrainConfig().backend == "local" and TrainConfig().dask_address is None
    assert load_train_config().backend == "local"  # default.yaml documents the keys, commented out
    with training_backend(TrainConfig()) as fitter:
        assert fitter is None and active_fitter() is None
    (tmp_path / "bad.yaml").write_text("dask_address: tcp://scheduler:8786\n")
    with pytest.raises(ConfigError, match="backend is 'local'"):
        load_train_config(tmp_path / "bad.yaml")
    (tmp_path / "spark.yaml").write_text("backend: spark\n")
    with pytest.raises(ConfigError, match="backend"):
        load_train_config(tmp_path / "spark.yaml")
    (tmp_path / "dask.yaml").write_text("backend: dask\ndask_address: tcp://scheduler:8786\n")
    assert load_train_config(tmp_path / "dask.yaml").dask_address == "tcp://scheduler:8786"
