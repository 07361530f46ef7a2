"""What the training job decides before fitting anything: the encoded rows, which outcomes the learners model,
and which learners the data can support (thin arms skip the per-action learners, large data the DR-learner)."""

from __future__ import annotations

import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.errors import DataError
from nextbest.model.encoding import FeatureEncoder
from nextbest.training.config import Learner, TrainConfig
from nextbest.training.dataset import TrainingSet
from nextbest.training.heads import revenue_per_conversion_is_constant
from nextbest.training.learners import FitData

THIN_TRAIN, THIN_HELD = 50, 10  # rows an arm needs in a fold's training part and in the fold, per-action learners


def fit_data(ds: TrainingSet, encoder: FeatureEncoder, catalog: ActionCatalog) -> FitData:
    return FitData(
        encoder.transform_frame(ds.frame),
        ds.action_index(catalog),
        ds.frame["converted"].to_numpy(dtype=np.int64),
        ds.frame["propensity"].to_numpy(dtype=np.float64),
    )


def choose_targets(cfg: TrainConfig, catalog: ActionCatalog, d: FitData, revenue: np.ndarray) -> tuple[list[str], str]:
    """Which outcomes the learners model, and why (a training note)."""
    nonconverter_revenue = bool(np.any(revenue[d.y == 0] != 0))
    if cfg.targets == "conversion" and nonconverter_revenue:
        raise DataError("targets: conversion, but rows that did not convert have revenue: use revenue or auto")
    if cfg.targets in ("conversion", "revenue"):
        return [cfg.targets], f"targets {cfg.targets} (configured)"
    if cfg.targets == "both":
        return (["revenue"] if nonconverter_revenue else ["conversion", "revenue"]), "targets both (configured)"
    if nonconverter_revenue:
        return ["revenue"], "non-converting rows have revenue: learners model revenue"
    if d.y.min() == 1:  # an outcome that is never zero (a basket size, a spend): no conversion to model
        return ["revenue"], "every row converted (revenue above 0 on every row): learners model revenue"
    if revenue_per_conversion_is_constant(catalog, (d.X, d.action, d.y, revenue)):
        return ["conversion"], "one revenue per conversion per action: learners model P(convert)"
    return ["conversion", "revenue"], "order values vary: learners model P(convert) x order value and revenue"


def feasible_learners(
    d: FitData, folds: np.ndarray, catalog: ActionCatalog, cfg: TrainConfig
) -> tuple[list[Learner], list[str]]:
    """Per-action learners (T, DR) need every action in every fold's training part and held-out fold; the
    shared S-learner does not. Logged data from a live policy often has thin arms (an action explored rarely
    or suppressed by rules), so those learners are skipped, with a note, instead of failing the job."""
    control = catalog.index[catalog.control]
    k = int(folds.max()) + 1
    thin: set[str] = set()
    for f in range(k):
        train = np.bincount(d.action[folds != f], minlength=len(catalog.ids))
        held = np.bincount(d.action[folds == f], minlength=len(catalog.ids))
        if train[control] == 0 or held[control] == 0:
            raise DataError(f"fold {f + 1} of {k} has no rows of the control action {catalog.control!r}")
        thin |= {a for i, a in enumerate(catalog.ids) if train[i] < THIN_TRAIN or held[i] < THIN_HELD}
    notes: list[str] = []
    learners = list(cfg.learners)
    cost = len(d) * (len(catalog.ids) - 1)
    if "dr" in learners and len(learners) > 1 and cost > cfg.dr_max_row_treatments:
        learners.remove("dr")
        notes.append(
            f"DR-learner skipped: {len(d):,} rows x {len(catalog.ids) - 1} treatments = {cost:,} row-fits per fold "
            f"(dr_max_row_treatments {cfg.dr_max_row_treatments:,})"
        )
    if not thin:
        return learners, notes
    kept: list[Learner] = [learner for learner in cfg.learners if learner == "s"]
    if not kept:
        raise DataError(
            f"actions {sorted(thin)} have too few rows for per-action learners {list(cfg.learners)}; "
            "add the S-learner (learners: [s, ...]) or collect more data"
        )
    skipped = [learner for learner in cfg.learners if learner != "s"]
    note = (
        f"thin actions {sorted(thin)}: per-action learners {skipped} skipped"
        if skipped
        else f"thin actions {sorted(thin)}"
    )
    return kept, [note]
