"""Uplift learners on LightGBM, following the scikit-learn estimator contract (hyper-parameters in
``__init__``, ``fit`` returns ``self``, learned attributes end in ``_``), like causalml's meta-learners:
``fit(X, action, y, ...)`` with integer action codes in the order of ``action_ids``.

Each learner ends as an :class:`~nextbest.model.heads.ActionHead` that predicts the outcome ``y`` for every
action: P(convert | x, a) with ``objective="binary"``, expected revenue with ``objective="regression"``.
Trees are chosen by early stopping on ``eval_set`` (the held-out fold when cross-fitting), or fixed with
``n_trees`` (the refit on every row, with the numbers the folds found: ``trees_`` holds them per booster).

Logged propensities: outcome models are fitted unweighted by default. Inverse-propensity weights remove no
bias from a model of E[y | x, a] when assignment depends on x only, and on the targeted logs of the external
benchmark they cost 1-13 points of lift capture (``benchmarks/external_quality.py``); ``weighting="ipw"``
still gives stabilised weights. The DR-learner uses the propensities in its pseudo-outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator

from nextbest.model.descriptors import ActionDescriptors
from nextbest.model.heads import ActionHead, Kind
from nextbest.training.boosting import fit_booster
from nextbest.training.config import DR_PROPENSITY_FLOOR, BoosterParams

# fit_booster lives in training.boosting; it stays importable from here, and the learners call it through this
# module's name (benchmarks/training_dask.py counts fits by replacing learners.fit_booster).
__all__ = [
    "DR_PROPENSITY_FLOOR",
    "INTERNAL_VALID",
    "LEARNERS",
    "DRLearner",
    "FitData",
    "Objective",
    "SLearner",
    "TLearner",
    "Weighting",
    "fit_booster",
    "stabilised_weights",
]

Array = np.ndarray
Objective = Literal["binary", "regression"]
Weighting = Literal["none", "ipw"]
INTERNAL_VALID = 0.15  # share of rows held out for early stopping when neither eval_set nor n_trees is given


@dataclass(frozen=True)
class FitData:
    """Rows of one split: features, action codes, outcome, logging propensity of the logged action."""

    X: Array
    action: Array
    y: Array
    propensity: Array

    def select(self, mask: Array) -> FitData:
        return FitData(self.X[mask], self.action[mask], self.y[mask], self.propensity[mask])

    def __len__(self) -> int:
        return int(self.y.size)


def stabilised_weights(action: Array, propensity: Array) -> Array:
    """P(A = a) / pi(a | x): inverse propensity weights rescaled to mean about 1 per action."""
    share = np.bincount(action, minlength=int(action.max()) + 1) / action.size
    weights: Array = share[action] / propensity
    return weights


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
        objective: Objective = "binary",
        weighting: Weighting = "none",
        n_trees: Mapping[str, int] | None = None,
        extend: float = 1.0,
        propensity_floor: float = DR_PROPENSITY_FLOOR,
    ) -> None:
        self.params = params
        self.early_stopping_rounds = early_stopping_rounds
        self.categorical = categorical
        self.seed = seed
        self.threads = threads
        self.crossfit_folds = crossfit_folds  # the DR-learner's nuisance folds
        self.descriptors = descriptors  # used by the S-learner only
        self.objective = objective
        self.weighting = weighting
        self.n_trees = n_trees  # booster key -> trees, for a refit without early stopping
        self.extend = extend  # grow past the early-stopping best (see fit_booster), for predict_all(multiple=)
        self.propensity_floor = propensity_floor  # the DR-learner's pseudo-outcome divides by at least this

    def _fit(
        self,
        key: str,
        objective: str,
        train: tuple[Array, Array, Array | None],
        valid: tuple[Array, Array, Array | None] | None,
        categorical: Sequence[int] | None = None,
    ) -> lgb.Booster:
        rounds = None if self.n_trees is None else self.n_trees[key]
        extend = self.extend if rounds is None and valid is not None else 1.0
        booster = fit_booster(
            self.params or BoosterParams(),
            objective,
            train,
            None if rounds is not None else valid,
            self.categorical if categorical is None else categorical,
            self.early_stopping_rounds,
            self.seed,
            self.threads,
            rounds,
            extend,
        )
        best = int(booster.best_iteration) if extend > 1.0 and booster.best_iteration > 0 else 0
        self.trees_[key] = best or int(booster.current_iteration())
        return booster

    def _weights(self, d: FitData) -> Array | None:
        return stabilised_weights(d.action, d.propensity) if self.weighting == "ipw" else None

    def predict_all(self, X: Array, multiple: float | None = None) -> Array:
        """The outcome for every action, (n, A) in ``action_ids_`` order (probabilities clipped to [0, 1]);
        with ``multiple``, from that multiple of each booster's best tree count (grown with ``extend``)."""
        iterations = None if multiple is None else self._iterations(multiple)
        out = self.head_.predict(X, self.action_ids_, self.control_, self.threads, iterations)
        return np.clip(out, 0.0, 1.0) if self.objective == "binary" else out

    def predict_ladder(self, X: Array, multiples: Sequence[float]) -> list[Array]:
        """``predict_all(X, multiple=m)`` for every ``m`` in ``multiples``, each tree evaluated once."""
        stages = [self._iterations(m) for m in multiples]
        outs = self.head_.predict_staged(X, self.action_ids_, self.control_, stages, self.threads)
        return [np.clip(out, 0.0, 1.0) if self.objective == "binary" else out for out in outs]

    def _iterations(self, multiple: float) -> dict[str, int]:
        """Booster key -> that multiple of its best tree count, within the trees it has."""
        return {
            key: max(1, min(round(multiple * best), int(self.head_.boosters[key].current_iteration())))
            for key, best in self.trees_.items()
        }

    def predict_proba_all(self, X: Array) -> Array:
        """P(convert | x, a) for every action (conversion learners)."""
        return self.predict_all(X)

    def fit(
        self,
        X: Array,
        action: Array,
        y: Array,
        *,
        propensity: Array,
        action_ids: tuple[str, ...],
        control: str,
        eval_set: FitData | None = None,
    ) -> _Learner:
        self.action_ids_ = tuple(action_ids)
        self.control_ = control
        self.trees_: dict[str, int] = {}
        train = FitData(X, action, y, propensity)
        if eval_set is None and self.n_trees is None:  # hold some rows out to stop on
            held = np.random.default_rng(self.seed).random(len(train)) < INTERNAL_VALID
            train, eval_set = train.select(~held), train.select(held)
        self.head_ = self._fit_head(train, eval_set)
        return self

    def _fit_head(self, train: FitData, valid: FitData | None) -> ActionHead:
        raise NotImplementedError


def _part(d: FitData | None, weight: Array | None = None) -> tuple[Array, Array, Array | None] | None:
    return None if d is None else (d.X, d.y, weight)


class SLearner(_Learner):
    """One model over features plus action descriptors (identity, discount, promotional, contact, reachable
    on its consent channel). Shares strength across actions; see ``nextbest.model.descriptors``."""

    kind: Kind = "s"

    def _fit_head(self, train: FitData, valid: FitData | None) -> ActionHead:
        if self.descriptors is None:
            raise ValueError("SLearner needs the action descriptors (ActionDescriptors.from_catalog)")
        d = self.descriptors
        cats = [*self.categorical, train.X.shape[1]]  # the action code column is categorical
        booster = self._fit(
            "all",
            self.objective,
            (d.design(train.X, train.action), train.y, self._weights(train)),
            None if valid is None else (d.design(valid.X, valid.action), valid.y, self._weights(valid)),
            cats,
        )
        return ActionHead("s", {"all": booster}, d)


class TLearner(_Learner):
    """One model per action on that action's rows. Flexible, but each model sees only its arm."""

    kind: Kind = "t"

    def _fit_head(self, train: FitData, valid: FitData | None) -> ActionHead:
        boosters = {}
        for code, action in enumerate(self.action_ids_):
            tr = train.select(train.action == code)
            va = None if valid is None else valid.select(valid.action == code)
            w = None if self.weighting == "none" else 1.0 / tr.propensity
            wv = None if va is None or self.weighting == "none" else 1.0 / va.propensity
            boosters[action] = self._fit(action, self.objective, (tr.X, tr.y, w), _part(va, wv))
        return ActionHead("t", boosters)


class DRLearner(_Learner):
    """Doubly robust learner: regress each treatment's DR pseudo-outcome on the features.

    The pseudo-outcome mu_a - mu_0 + 1[A=a](y - mu_a)/pi - 1[A=0](y - mu_0)/pi is unbiased for the effect
    whenever the logged propensities are right, with outcome models mu cross-fitted so no row is scored by a
    model that saw it. pi is floored at ``propensity_floor`` (``DR_PROPENSITY_FLOOR`` by default): a little bias
    where the log rarely acted, for much less variance there."""

    kind: Kind = "dr"

    def _outcome_models(self, train: FitData, valid: FitData | None) -> list[lgb.Booster]:
        """One outcome model per action; without ``valid`` (a refit) some of ``train`` is held out to stop on."""
        if valid is None:
            held = np.random.default_rng(self.seed + 1).random(len(train)) < INTERNAL_VALID
            train, valid = train.select(~held), train.select(held)
        models = []
        for c in range(len(self.action_ids_)):
            tr, va = train.select(train.action == c), valid.select(valid.action == c)
            models.append(
                fit_booster(
                    self.params or BoosterParams(),
                    self.objective,
                    (tr.X, tr.y, None),
                    (va.X, va.y, None),
                    self.categorical,
                    self.early_stopping_rounds,
                    self.seed,
                    self.threads,
                )
            )
        return models

    def _pseudo(self, d: FitData, mu: Array, control: int, code: int) -> Array:
        treated, ctrl = (d.action == code), (d.action == control)
        pi = np.maximum(d.propensity, self.propensity_floor)  # bounded weights where the log rarely acted
        pseudo: Array = (
            mu[:, code] - mu[:, control] + treated * (d.y - mu[:, code]) / pi - ctrl * (d.y - mu[:, control]) / pi
        )
        return pseudo

    def _fit_head(self, train: FitData, valid: FitData | None) -> ActionHead:
        n_actions = len(self.action_ids_)
        control = self.action_ids_.index(self.control_)
        fold = np.random.default_rng(self.seed).integers(0, self.crossfit_folds, train.y.size)
        mu_train = np.zeros((train.y.size, n_actions))
        mu_valid = None if valid is None else np.zeros((valid.y.size, n_actions))
        for f in range(self.crossfit_folds):
            models = self._outcome_models(train.select(fold != f), valid)
            mu_train[fold == f] = np.column_stack([m.predict(train.X[fold == f]) for m in models])
            if valid is not None and mu_valid is not None:
                mu_valid += np.column_stack([m.predict(valid.X) for m in models]) / self.crossfit_folds
        ctrl_tr = train.select(train.action == control)
        ctrl_va = None if valid is None else valid.select(valid.action == control)
        boosters = {
            self.control_: self._fit(self.control_, self.objective, (ctrl_tr.X, ctrl_tr.y, None), _part(ctrl_va))
        }
        for code, action in enumerate(self.action_ids_):
            if code == control:
                continue
            va_part = None
            if valid is not None and mu_valid is not None:
                va_part = (valid.X, self._pseudo(valid, mu_valid, control, code), None)
            boosters[action] = self._fit(
                action, "regression", (train.X, self._pseudo(train, mu_train, control, code), None), va_part
            )
        return ActionHead("dr", boosters)


LEARNERS: dict[str, type[_Learner]] = {"s": SLearner, "t": TLearner, "dr": DRLearner}
