"""Cross-fitting: where the fold models stop adding trees, and what their out-of-fold predictions depend on."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.model.descriptors import ActionDescriptors
from nextbest.training.config import BoosterParams, TrainConfig
from nextbest.training.crossfit import CandidateSpec, CrossFitter
from nextbest.training.learners import INTERNAL_VALID, FitData
from tests.unit.training.test_learners import CATALOG, FEATURES, make

PARAMS = BoosterParams(num_leaves=7, min_child_samples=50, learning_rate=0.1)


def fitter(stopping: str, flip_fold0: bool = False) -> CrossFitter:
    """The learners' three-action log (3,000 rows in 3 folds), order values varying with x2; with
    ``flip_fold0`` the conversions of fold 0 are inverted."""
    d = make(3000, 4)
    order_value = 50 + 10 * d.X[:, 2] + np.random.default_rng(5).normal(0, 5, len(d))
    folds = np.arange(len(d)) % 3
    y = np.where(folds == 0, 1 - d.y, d.y) if flip_fold0 else d.y
    cfg = TrainConfig(grid=(PARAMS,), threads=1, crossfit_stopping=stopping)  # type: ignore[arg-type]
    data = FitData(d.X, d.action, y, d.propensity)
    descriptors = ActionDescriptors.from_catalog(CATALOG, FEATURES)
    return CrossFitter(CATALOG, cfg, descriptors, (), data, y * order_value, folds, lambda _msg: None)


@pytest.mark.parametrize("learner", ["s", "t", "dr"])
def test_inner_stopping_makes_out_of_fold_predictions_independent_of_the_scored_rows_outcomes(learner: str) -> None:
    spec = CandidateSpec(learner, "conversion", 0, PARAMS)
    held = np.arange(3000) % 3 == 0
    inner = [fitter("inner", flip).crossfit(spec).levels[1.0][held] for flip in (False, True)]
    np.testing.assert_array_equal(inner[0], inner[1])
    # on the fold it scores, the tree count follows those rows' outcomes: the predictions move with them
    fold = [fitter("fold", flip).crossfit(spec).levels[1.0][held] for flip in (False, True)]
    assert np.abs(fold[0] - fold[1]).max() > 1e-6


def test_the_stopping_rows_are_a_share_of_the_training_folds_or_the_scored_fold() -> None:
    for f in range(3):
        fit_rows, stop_rows = fitter("inner")._stopping(f)
        others = np.arange(3000) % 3 != f
        assert not (fit_rows & stop_rows).any() and ((fit_rows | stop_rows) == others).all()
        assert abs(stop_rows.sum() / others.sum() - INTERNAL_VALID) < 0.03
        fit_rows, stop_rows = fitter("fold")._stopping(f)
        assert (fit_rows == others).all() and (stop_rows == ~others).all()


def test_the_order_value_head_follows_the_same_rule() -> None:
    held = np.arange(3000) % 3 == 0
    inner = [fitter("inner", flip).value_oof() for flip in (False, True)]
    assert inner[0][1] is not None  # order values vary: a booster, not constants
    np.testing.assert_array_equal(inner[0][0][held], inner[1][0][held])
    fold = [fitter("fold", flip).value_oof()[0][held] for flip in (False, True)]
    assert np.abs(fold[0] - fold[1]).max() > 1e-6
