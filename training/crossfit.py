"""Cross-fitting: every candidate learner is fitted K times, each time on all customers but one fold and
scored on that fold, so every row gets an out-of-fold prediction from a model that never saw it. Selection,
blending, the decision margin and the evaluation all use those predictions; the final model is then refitted
on every row with the trees the folds found (their mean, a little more for the larger data), so no row is
spent only on evaluation or early stopping.

How many trees. Early stopping on the outcome's loss stops when the outcome stops improving, which is before
an effect of a few percent of the outcome is fully learned (measured: on causalml's constant-effect setup a
refit with the early-stopping count treats 96% of the customers where treating all is right; with twice the
trees, 99.8%). So each fold model grows on to ``LADDER[-1]`` times its best count, its out-of-fold predictions
are taken at every multiple in ``LADDER``, and the pipeline keeps the multiple whose predictions best explain
the doubly robust contrasts (``stacking.contrast_loss``), the decisions' own loss.

Folds are drawn by a hash of (seed, customer id): a customer's rows are in one fold, as in ``dataset.split``.
A fold model stops adding trees on a share of its own training rows (``crossfit_stopping: inner``, the
default), which keeps the scored rows' outcomes out of its tree counts, or on the fold it scores (``fold``, the
earlier default: the out-of-fold evidence leaked; docs/decision-quality.md, "Cross-fitting without a leak").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.core.catalog import ActionCatalog
from nextbest.core.features import ENTITY
from nextbest.model.descriptors import ActionDescriptors
from nextbest.model.heads import ActionHead, Target, ValueHead
from nextbest.training.config import BoosterParams, TrainConfig
from nextbest.training.heads import Rows, constant_value_head, fit_value_head
from nextbest.training.learners import INTERNAL_VALID, LEARNERS, FitData, _Learner

Array = np.ndarray
REFIT_TREES = 1.1  # the refit sees K/(K-1) times the rows of a fold model: a few more trees than the folds'
LADDER = (1.0, 1.5, 2.0, 3.0)  # multiples of the early-stopping tree count compared out of fold


@dataclass(frozen=True)
class CandidateSpec:
    """One learner to cross-fit: its family, what it predicts, and its tuning."""

    learner: str  # s, t, dr
    target: Target
    grid_index: int
    params: BoosterParams

    @property
    def name(self) -> str:
        suffix = "" if self.target == "conversion" else "-revenue"
        return f"{self.learner}{suffix}-{self.grid_index}"


@dataclass
class CrossFitted:
    spec: CandidateSpec
    levels: dict[float, Array]  # multiple of the best tree count -> (n, A) out-of-fold outcome per action
    best: dict[str, float]  # mean early-stopping tree count per booster over the folds
    seconds: float
    multiple: float = 1.0  # the chosen multiple (``choose``)

    @property
    def oof(self) -> Array:
        return self.levels[self.multiple]

    @property
    def trees(self) -> dict[str, int]:
        """Trees per booster for the refit: the chosen multiple of the folds' best, for a larger data set."""
        return {key: max(1, round(b * self.multiple * REFIT_TREES)) for key, b in self.best.items()}


def assign_folds(frame: pd.DataFrame, k: int, seed: int) -> Array:
    keys = frame[ENTITY].astype(str).radd(f"fold:{seed}:")
    u = pd.util.hash_pandas_object(keys, index=False).to_numpy() / np.float64(2**64)
    folds: Array = np.minimum((u * k).astype(np.int64), k - 1)
    return folds


@dataclass
class CrossFitter:
    """Fits learners on folds of one training set (features encoded once)."""

    catalog: ActionCatalog
    cfg: TrainConfig
    descriptors: ActionDescriptors
    categorical: tuple[int, ...]
    data: FitData  # y = converted
    revenue: Array
    folds: Array
    say: Callable[[str], None]

    @property
    def k(self) -> int:
        return int(self.folds.max()) + 1

    def _learner(self, spec: CandidateSpec, trees: dict[str, int] | None, extend: float = 1.0) -> _Learner:
        cfg = self.cfg
        return LEARNERS[spec.learner](
            spec.params,
            cfg.early_stopping_rounds,
            self.categorical,
            cfg.seed,
            cfg.threads,
            cfg.crossfit_folds,
            self.descriptors,
            objective="binary" if spec.target == "conversion" else "regression",
            weighting=cfg.weighting,
            n_trees=trees,
            extend=extend,
            propensity_floor=cfg.dr_propensity_floor,
        )

    def _target(self, spec: CandidateSpec, rows: Array | slice = slice(None)) -> FitData:
        """Conversion learners fit ``converted``; revenue learners the net value (revenue minus the action's
        cost, see ``heads.Member``)."""
        d = self.data
        y = d.y if spec.target == "conversion" else self.revenue - self.catalog.costs[d.action]
        return FitData(d.X[rows], d.action[rows], y[rows], d.propensity[rows])

    @property
    def offset(self) -> dict[str, float]:
        """What a revenue learner's output lacks to be revenue: each action's cost."""
        return {a: float(c) for a, c in zip(self.catalog.ids, self.catalog.costs, strict=True)}

    def crossfit(self, spec: CandidateSpec, ladder: tuple[float, ...] = LADDER) -> CrossFitted:
        started = time.perf_counter()
        ids = self.catalog.ids
        if spec.learner == "dr":
            ladder = (1.0,)  # its effect boosters stop on the DR pseudo-outcome's own loss
        levels = {m: np.zeros((len(self.data), len(ids))) for m in ladder}
        trees: dict[str, list[int]] = {}
        for f in range(self.k):
            self.say(f"cross-fit {spec.name}, fold {f + 1}/{self.k}")
            fit_rows, stop_rows = self._stopping(f)
            train, held = self._target(spec, fit_rows), self._target(spec, self.folds == f)
            est = self._learner(spec, None, extend=max(ladder)).fit(
                train.X,
                train.action,
                train.y,
                propensity=train.propensity,
                action_ids=ids,
                control=self.catalog.control,
                eval_set=self._target(spec, stop_rows),
            )
            staged = est.predict_ladder(held.X, ladder) if len(ladder) > 1 else [est.predict_all(held.X)]
            for m, out in zip(ladder, staged, strict=True):
                levels[m][self.folds == f] = out
            for key, n in est.trees_.items():
                trees.setdefault(key, []).append(n)
        best = {key: float(np.mean(v)) for key, v in trees.items()}
        return CrossFitted(spec, levels, best, time.perf_counter() - started)

    def _stopping(self, f: int) -> tuple[Array, Array]:
        """(rows fold ``f``'s models train on, rows they stop on): every other fold and fold ``f`` itself, or
        with ``crossfit_stopping: inner`` a random ``INTERNAL_VALID`` share of the other folds, so the tree
        count never depends on the outcomes of the rows the model scores."""
        others = self.folds != f
        if self.cfg.crossfit_stopping == "fold":
            return others, ~others
        inner = np.random.default_rng([self.cfg.seed, f]).random(len(self.folds)) < INTERNAL_VALID
        return others & ~inner, others & inner

    def refit(self, fitted: CrossFitted) -> ActionHead:
        """The candidate on every row, with the trees its folds found."""
        self.say(f"refit {fitted.spec.name} on all {len(self.data):,} rows")
        d = self._target(fitted.spec)
        est = self._learner(fitted.spec, fitted.trees).fit(
            d.X, d.action, d.y, propensity=d.propensity, action_ids=self.catalog.ids, control=self.catalog.control
        )
        head: ActionHead = est.head_
        return head

    # The order-value head -----------------------------------------------------------------------------------
    def _rows(self, mask: Array | slice = slice(None)) -> Rows:
        d = self.data
        return d.X[mask], d.action[mask], d.y[mask], self.revenue[mask]

    def value_oof(self) -> tuple[Array, int | None]:
        """Out-of-fold order value of every action (n, A), and the trees for the refit (None: constants)."""
        cfg = self.cfg
        out = np.zeros((len(self.data), len(self.catalog.ids)))
        trees = []
        for f in range(self.k):
            fit_rows, stop_rows = self._stopping(f)
            head = fit_value_head(
                self.catalog,
                self._rows(fit_rows),
                self._rows(stop_rows),
                cfg.grid[0],
                list(self.categorical),
                cfg.early_stopping_rounds,
                cfg.seed,
                cfg.threads,
            )
            held = self.folds == f
            out[held] = head.predict(self.data.X[held], self.catalog.ids, cfg.threads)
            if head.booster is not None:
                trees.append(head.trees)
        return out, (max(1, round(float(np.mean(trees)) * REFIT_TREES)) if trees else None)

    def value_refit(self, trees: int | None) -> ValueHead:
        cfg = self.cfg
        if trees is None:  # the folds priced every action by a constant: so does the refit
            return constant_value_head(self.catalog, self._rows())
        return fit_value_head(
            self.catalog,
            self._rows(),
            None,
            cfg.grid[0],
            list(self.categorical),
            cfg.early_stopping_rounds,
            cfg.seed,
            cfg.threads,
            rounds=trees,
        )
