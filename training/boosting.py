"""One LightGBM booster for the learners and the value head (:func:`fit_booster`): its parameters, early
stopping on a validation set or a fixed tree count, growing past the best count for a comparison of tree
multiples (``extend``), in process or on the active dask backend (``training.distributed``)."""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np

from nextbest.training.config import BoosterParams
from nextbest.training.distributed import active_fitter

Array = np.ndarray


class _StopPastBest:
    """``lgb.early_stopping``'s rule (the first strict best of the validation metric; stop ``patience`` trees
    without a gain) that keeps growing until ``extend`` times the best count, so that predictions at a few
    multiples of it can be compared: the outcome's fit stops improving before an effect of a few percent of
    it is fully learned (``training.crossfit`` picks the multiple on the decisions' own loss)."""

    order = 30
    before_iteration = False

    def __init__(self, patience: int, extend: float) -> None:
        self.patience, self.extend = patience, extend
        self.best_score, self.best_count = float("inf"), 0

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        results = env.evaluation_result_list
        assert results is not None  # set whenever there is a validation set, which this rule needs
        _, _, score, higher_better = results[0][:4]
        value = -score if higher_better else score
        count = env.iteration + 1
        if value < self.best_score:
            self.best_score, self.best_count = value, count
        if count >= max(self.best_count + self.patience, int(np.ceil(self.extend * self.best_count))):
            raise lgb.callback.EarlyStopException(self.best_count - 1, results)


def fit_booster(
    params: BoosterParams,
    objective: str,
    train: tuple[Array, Array, Array | None],
    valid: tuple[Array, Array, Array | None] | None,
    categorical: Sequence[int],
    early_stopping_rounds: int,
    seed: int,
    threads: int,
    rounds: int | None = None,
    extend: float = 1.0,
) -> lgb.Booster:
    """One LightGBM model: trees chosen by early stopping on ``valid`` (only the best are kept), or exactly
    ``rounds`` trees when given (no validation set needed). With ``extend`` > 1 it grows on to that multiple
    of the best count and keeps every tree (``best_iteration`` says where the best was)."""
    lgb_params = {
        "objective": objective,
        "learning_rate": params.learning_rate,
        "num_leaves": params.for_rows(len(train[1])).num_leaves,  # the pipeline resolves auto once, for all rows
        "min_data_in_leaf": params.min_child_samples,
        "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": params.lambda_l2,
        "num_threads": threads,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
        "feature_pre_filter": False,
    }
    cats = list(categorical)
    fitter = active_fitter()
    if fitter is not None:  # backend: dask (training/distributed.py), same parameters and stopping rule
        if rounds is not None:
            return fitter.fit(lgb_params, train, None, cats, max(int(rounds), 1), early_stopping_rounds)
        assert valid is not None
        return fitter.fit(lgb_params, train, valid, cats, params.max_trees, early_stopping_rounds, extend)
    dtrain = lgb.Dataset(train[0], train[1], weight=train[2], categorical_feature=cats, free_raw_data=True)
    if rounds is not None:
        booster = lgb.train(lgb_params, dtrain, num_boost_round=max(int(rounds), 1))
        return lgb.Booster(model_str=booster.model_to_string())
    assert valid is not None
    dvalid = lgb.Dataset(valid[0], valid[1], weight=valid[2], categorical_feature=cats, reference=dtrain)
    if extend > 1.0:
        return lgb.train(
            lgb_params,
            dtrain,
            num_boost_round=params.max_trees,
            valid_sets=[dvalid],
            callbacks=[_StopPastBest(early_stopping_rounds, extend)],
            keep_training_booster=True,  # else lgb.train trims the model to the best iteration
        )
    booster = lgb.train(
        lgb_params,
        dtrain,
        num_boost_round=params.max_trees,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
