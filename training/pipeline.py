"""The training job: split by customer, fit every (learner, tuning candidate) with early stopping, pick the
one with the best *validation policy value* (not training fit), then evaluate it once on the test split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextbest.core import ope
from nextbest.core.catalog import ActionCatalog
from nextbest.errors import DataError
from nextbest.model.descriptors import ActionDescriptors
from nextbest.model.encoding import FeatureEncoder
from nextbest.model.policy_model import PolicyModel
from nextbest.training.config import TrainConfig
from nextbest.training.dataset import TrainingSet, split
from nextbest.training.distributed import training_backend
from nextbest.training.evaluation import EvaluationReport, evaluate, score
from nextbest.training.heads import fit_value_head, platt_calibration
from nextbest.training.learners import LEARNERS, FitData
from nextbest.training.selection import Option, policy_terms, select

Progress = Callable[[str], None]
THIN_TRAIN, THIN_VALID = 50, 10  # rows an arm needs for a per-action model with early stopping


@dataclass
class Candidate:
    learner: str
    grid_index: int
    model: PolicyModel
    valid_value: dict[str, Any]  # SNIPS estimate of the policy value on the validation split
    seconds: float
    trees: int


@dataclass
class TrainResult:
    model: PolicyModel
    chosen: Candidate
    candidates: list[Candidate]
    report: EvaluationReport
    sizes: dict[str, int]
    fingerprint: str
    timings: dict[str, float] = field(default_factory=dict)
    splits: dict[str, TrainingSet] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)


def _fit_data(ds: TrainingSet, encoder: FeatureEncoder, catalog: ActionCatalog) -> FitData:
    return FitData(
        encoder.transform_frame(ds.frame),
        ds.action_index(catalog),
        ds.frame["converted"].to_numpy(dtype=np.int64),
        ds.frame["propensity"].to_numpy(dtype=np.float64),
    )


def _trees(model: PolicyModel) -> int:
    total = sum(b.num_trees() for b in model.conversion.boosters.values())
    return total + (model.value.booster.num_trees() if model.value.booster is not None else 0)


def _feasible_learners(
    parts: dict[str, TrainingSet], catalog: ActionCatalog, cfg: TrainConfig
) -> tuple[list[str], list[str]]:
    """Per-action learners (T, DR) need every action in the training and validation splits; the shared
    S-learner does not. Logged data from a live policy often has thin arms (an action explored rarely or
    suppressed by rules), so those learners are skipped, with a note, instead of failing the job."""
    counts = {k: parts[k].frame["action"].value_counts() for k in ("train", "valid")}
    for name, c in counts.items():
        if c.get(catalog.control, 0) == 0:
            raise DataError(f"the {name} split has no rows of the control action {catalog.control!r}")
    thin = sorted(
        a for a in catalog.ids if counts["train"].get(a, 0) < THIN_TRAIN or counts["valid"].get(a, 0) < THIN_VALID
    )
    if not thin:
        return list(cfg.learners), []
    kept = [learner for learner in cfg.learners if learner == "s"]
    if not kept:
        raise DataError(
            f"actions {thin} have too few rows for per-action learners {list(cfg.learners)}; "
            "add the S-learner (learners: [s, ...]) or collect more data"
        )
    skipped = [learner for learner in cfg.learners if learner != "s"]
    note = f"thin actions {thin}: per-action learners {skipped} skipped" if skipped else f"thin actions {thin}"
    return kept, [note]


def train(
    ds: TrainingSet,
    catalog: ActionCatalog,
    cfg: TrainConfig,
    progress: Progress | None = None,
    logging_probs: Callable[[TrainingSet], np.ndarray | None] | None = None,
) -> TrainResult:
    """The job on the configured backend (``cfg.backend``): a Dask cluster lives exactly as long as the job."""
    started = time.perf_counter()
    with training_backend(cfg, progress) as fitter:
        result = _train(ds, catalog, cfg, progress, logging_probs)
    result.model.metadata["training_backend"] = fitter.description if fitter else "local"
    if fitter is not None:  # starting (or reaching) and closing the cluster, outside the job's own timings
        result.timings["cluster"] = time.perf_counter() - started - result.timings["total"]
    return result


def _train(
    ds: TrainingSet,
    catalog: ActionCatalog,
    cfg: TrainConfig,
    progress: Progress | None = None,
    logging_probs: Callable[[TrainingSet], np.ndarray | None] | None = None,
) -> TrainResult:
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    parts = split(ds, cfg.test_fraction, cfg.valid_fraction, cfg.seed)
    learners, notes = _feasible_learners(parts, catalog, cfg)
    encoder = FeatureEncoder.fit(parts["train"].frame, ds.numeric, ds.categorical)
    tr, va = (_fit_data(parts[k], encoder, catalog) for k in ("train", "valid"))
    cats = encoder.categorical_indices
    descriptors = ActionDescriptors.from_catalog(catalog, encoder.feature_names)
    rev = {k: parts[k].frame["revenue"].to_numpy(dtype=np.float64) for k in ("train", "valid")}
    say("value head")
    value_head = fit_value_head(
        catalog,
        (tr.X, tr.action, tr.y, rev["train"]),
        (va.X, va.action, va.y, rev["valid"]),
        cfg.grid[0],
        cats,
        cfg.early_stopping_rounds,
        cfg.seed,
        cfg.threads,
    )
    timings = {"prepare": time.perf_counter() - started}

    candidates: list[Candidate] = []
    options: list[Option] = []
    valid_rewards = parts["valid"].rewards(catalog)
    control = catalog.index[catalog.control]
    for learner in learners:
        for g, params in enumerate(cfg.grid):
            say(f"fit {learner}-learner, candidate {g + 1}/{len(cfg.grid)}")
            t0 = time.perf_counter()
            est = LEARNERS[learner](
                params, cfg.early_stopping_rounds, tuple(cats), cfg.seed, cfg.threads, cfg.crossfit_folds, descriptors
            )
            est.fit(
                tr.X,
                tr.action,
                tr.y,
                propensity=tr.propensity,
                action_ids=catalog.ids,
                control=catalog.control,
                eval_set=va,
            )
            model = PolicyModel(
                encoder,
                catalog.ids,
                catalog.control,
                est.head_,
                value_head,
                metadata={"learner": learner, "grid_index": g, "params": params.model_dump()},
            )
            if cfg.calibrate:
                p_valid = model.predict(va.X, threads=cfg.threads)[0][np.arange(va.y.size), va.action]
                model.calibration = platt_calibration(p_valid, va.y)
            s_valid = score(model, parts["valid"], catalog, threads=cfg.threads)
            trees = _trees(model)
            margin = cfg.decision_margin
            terms = policy_terms(s_valid.net_uplift, margin, control, valid_rewards, va.action, va.propensity)
            preference = (cfg.learners.index(learner), params.num_leaves, trees)
            options.append(Option(len(candidates), margin, terms, preference))
            value = ope.from_terms(terms, "snips").as_dict()
            candidates.append(Candidate(learner, g, model, value, time.perf_counter() - t0, trees))
    timings["fit_and_tune"] = time.perf_counter() - started - timings["prepare"]

    option, evidence = select(options)
    chosen = candidates[option.candidate]
    chosen.model.decision_margin = option.margin
    chosen.valid_value = {**ope.from_terms(option.terms, "snips").as_dict(), "selection": evidence}
    say(f"evaluate the chosen {chosen.learner}-learner (margin {option.margin:g}) on the test split")
    t0 = time.perf_counter()
    chosen.model.metadata.update(
        feature_service=ds.feature_service,
        data_fingerprint=ds.fingerprint,
        source=ds.source,
        split_seed=cfg.seed,
        test_fraction=cfg.test_fraction,
        valid_fraction=cfg.valid_fraction,
        catalog_hash=catalog.content_hash,
    )
    chosen.model.metadata["catalog"] = catalog.model_dump(mode="json")
    probs = logging_probs(parts["test"]) if logging_probs else None
    report = evaluate(chosen.model, parts["test"], parts["valid"], catalog, logging_probs=probs)
    timings["evaluate"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started
    sizes = {k: len(v.frame) for k, v in parts.items()}
    return TrainResult(chosen.model, chosen, candidates, report, sizes, ds.fingerprint, timings, parts, notes)
