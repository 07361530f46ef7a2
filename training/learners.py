"""Uplift learners on LightGBM, following the scikit-learn estimator contract (hyper-parameters in
``__init__``, ``fit`` returns ``self``, learned attributes end in ``_``), like causalml's meta-learners:
``fit(X, action, y, ...)`` with integer action codes in the order of ``action_ids``.

Each learner ends as a :class:`~nextbest.model.policy_model.ConversionHead` that predicts P(convert | x, a)
for every action; uplift is the difference to the control. Logged propensities enter as stabilised inverse
propensity weights (S, T) or in the doubly robust pseudo-outcome (DR), so non-uniform assignment is handled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator

from nextbest.model.descriptors import ActionDescriptors
from nextbest.model.policy_model import ConversionHead, Kind
from nextbest.training.config import BoosterParams
from nextbest.training.distributed import active_fitter

Array = np.ndarray


@dataclass(frozen=True)
class FitData:
    """Rows of one split: features, action codes, outcome, logging propensity of the logged action."""

    X: Array
    action: Array
    y: Array
    propensity: Array

    def select(self, mask: Array) -> FitData:
        return FitData(self.X[mask], self.action[mask], self.y[mask], self.propensity[mask])


def stabilised_weights(action: Array, propensity: Array) -> Array:
    """P(A = a) / pi(a | x): inverse propensity weights rescaled to mean about 1 per action."""
    share = np.bincount(action, minlength=int(action.max()) + 1) / action.size
    return share[action] / propensity


def fit_booster(
    params: BoosterParams,
    objective: str,
    train: tuple[Array, Array, Array | None],
    valid: tuple[Array, Array, Array | None],
    categorical: Sequence[int],
    early_stopping_rounds: int,
    seed: int,
    threads: int,
) -> lgb.Booster:
    """One LightGBM model, trees chosen by early stopping on ``valid``; only the best trees are kept."""
    lgb_params = {
        "objective": objective,
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
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
        return fitter.fit(lgb_params, train, valid, cats, params.max_trees, early_stopping_rounds)
    dtrain = lgb.Dataset(train[0], train[1], weight=train[2], categorical_feature=cats, free_raw_data=True)
    dvalid = lgb.Dataset(valid[0], valid[1], weight=valid[2], categorical_feature=cats, reference=dtrain)
    booster = lgb.train(
        lgb_params,
        dtrain,
        num_boost_round=params.max_trees,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


class _Learner(BaseEstimator):  # type: ignore[misc]
    kind: Kind

    def __init__(
        self,
        params: BoosterParams | None = None,
        early_stopping_rounds: int = 50,
        categorical: tuple[int, ...] = (),
        seed: int = 0,
        threads: int = 2,
        crossfit_folds: int = 2,
        descriptors: ActionDescriptors | None = None,
    ) -> None:
        self.params = params
        self.early_stopping_rounds = early_stopping_rounds
        self.categorical = categorical
        self.seed = seed
        self.threads = threads
        self.crossfit_folds = crossfit_folds
        self.descriptors = descriptors  # used by the S-learner only

    def _fit(
        self,
        objective: str,
        train: tuple[Array, Array, Array | None],
        valid: tuple[Array, Array, Array | None],
        categorical: Sequence[int] | None = None,
    ) -> lgb.Booster:
        return fit_booster(
            self.params or BoosterParams(),
            objective,
            train,
            valid,
            self.categorical if categorical is None else categorical,
            self.early_stopping_rounds,
            self.seed,
            self.threads,
        )

    def predict_proba_all(self, X: Array) -> Array:
        """P(convert | x, a) for every action, (n, A) in ``action_ids_`` order."""
        return np.clip(self.head_.predict(X, self.action_ids_, self.control_, self.threads), 0.0, 1.0)

    def fit(
        self,
        X: Array,
        action: Array,
        y: Array,
        *,
        propensity: Array,
        action_ids: tuple[str, ...],
        control: str,
        eval_set: FitData,
    ) -> _Learner:
        self.action_ids_ = tuple(action_ids)
        self.control_ = control
        self.head_ = self._fit_head(FitData(X, action, y, propensity), eval_set)
        return self

    def _fit_head(self, train: FitData, valid: FitData) -> ConversionHead:
        raise NotImplementedError


class SLearner(_Learner):
    """One classifier over features plus action descriptors (identity, discount, promotional, contact,
    reachable on its consent channel). Shares strength across actions; see ``nextbest.model.descriptors``."""

    kind: Kind = "s"

    def _fit_head(self, train: FitData, valid: FitData) -> ConversionHead:
        if self.descriptors is None:
            raise ValueError("SLearner needs the action descriptors (ActionDescriptors.from_catalog)")
        d = self.descriptors
        cats = [*self.categorical, train.X.shape[1]]  # the action code column is categorical
        booster = self._fit(
            "binary",
            (d.design(train.X, train.action), train.y, stabilised_weights(train.action, train.propensity)),
            (d.design(valid.X, valid.action), valid.y, stabilised_weights(valid.action, valid.propensity)),
            cats,
        )
        return ConversionHead("s", {"all": booster}, d)


class TLearner(_Learner):
    """One classifier per action on that action's rows. Flexible, but each model sees only its arm."""

    kind: Kind = "t"

    def _fit_head(self, train: FitData, valid: FitData) -> ConversionHead:
        boosters = {}
        for code, action in enumerate(self.action_ids_):
            tr, va = train.select(train.action == code), valid.select(valid.action == code)
            boosters[action] = self._fit("binary", (tr.X, tr.y, 1.0 / tr.propensity), (va.X, va.y, 1.0 / va.propensity))
        return ConversionHead("t", boosters)


class DRLearner(_Learner):
    """Doubly robust learner: regress each treatment's DR pseudo-outcome on the features.

    The pseudo-outcome mu_a - mu_0 + 1[A=a](y - mu_a)/pi - 1[A=0](y - mu_0)/pi is unbiased for the effect
    whenever the logged propensities are right, with outcome models mu cross-fitted so no row is scored by a
    model that saw it."""

    kind: Kind = "dr"

    def _outcome_models(self, train: FitData, valid: FitData) -> list[lgb.Booster]:
        return [
            self._fit(
                "binary",
                (train.X[train.action == c], train.y[train.action == c], None),
                (valid.X[valid.action == c], valid.y[valid.action == c], None),
            )
            for c in range(len(self.action_ids_))
        ]

    def _pseudo(self, d: FitData, mu: Array, control: int, code: int) -> Array:
        treated, ctrl = (d.action == code), (d.action == control)
        return (
            mu[:, code]
            - mu[:, control]
            + treated * (d.y - mu[:, code]) / d.propensity
            - ctrl * (d.y - mu[:, control]) / d.propensity
        )

    def _fit_head(self, train: FitData, valid: FitData) -> ConversionHead:
        n_actions = len(self.action_ids_)
        control = self.action_ids_.index(self.control_)
        fold = np.random.default_rng(self.seed).integers(0, self.crossfit_folds, train.y.size)
        mu_train = np.zeros((train.y.size, n_actions))
        mu_valid = np.zeros((valid.y.size, n_actions))
        for f in range(self.crossfit_folds):
            models = self._outcome_models(train.select(fold != f), valid)
            mu_train[fold == f] = np.column_stack([m.predict(train.X[fold == f]) for m in models])
            mu_valid += np.column_stack([m.predict(valid.X) for m in models]) / self.crossfit_folds
        boosters = {
            self.control_: self._fit(
                "binary",
                (train.X[train.action == control], train.y[train.action == control], None),
                (valid.X[valid.action == control], valid.y[valid.action == control], None),
            )
        }
        for code, action in enumerate(self.action_ids_):
            if code == control:
                continue
            boosters[action] = self._fit(
                "regression",
                (train.X, self._pseudo(train, mu_train, control, code), None),
                (valid.X, self._pseudo(valid, mu_valid, control, code), None),
            )
        return ConversionHead("dr", boosters)


LEARNERS: dict[str, type[_Learner]] = {"s": SLearner, "t": TLearner, "dr": DRLearner}
