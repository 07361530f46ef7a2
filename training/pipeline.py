"""The training job: cross-fit every candidate learner, blend them and choose the decision margin on their
out-of-fold predictions (``training.selection``), refit the blend's members on every row, and evaluate.

No row is spent only on evaluation: with ``test_fraction: 0`` (the default) every row trains the final model
and every row is evaluated by models that never saw it (the out-of-fold predictions of the chosen blend and
margin). A ``test_fraction`` above 0 holds customers out entirely for an evaluation of the refitted model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextbest.core import ope
from nextbest.core.catalog import ActionCatalog
from nextbest.model.descriptors import ActionDescriptors
from nextbest.model.encoding import FeatureEncoder
from nextbest.model.heads import Member, calibrated
from nextbest.model.policy_model import PolicyModel
from nextbest.training import stacking
from nextbest.training.config import TrainConfig
from nextbest.training.crossfit import CandidateSpec, CrossFitted, CrossFitter, assign_folds
from nextbest.training.dataset import TrainingSet, split_test
from nextbest.training.distributed import training_backend
from nextbest.training.evaluation import EvaluationReport, evaluate, evaluate_scored, scored
from nextbest.training.heads import platt_calibration
from nextbest.training.oof_rows import with_predictions
from nextbest.training.preparation import choose_targets, feasible_learners, fit_data
from nextbest.training.selection import Scored, _anchor, choose_blend

# _anchor lives in training.selection; it stays importable from here (tests/unit/training/test_stacking.py).
__all__ = ["Candidate", "Progress", "TrainResult", "_anchor", "train"]

Progress = Callable[[str], None]


@dataclass
class Candidate:
    learner: str
    grid_index: int
    target: str
    name: str
    valid_value: dict[str, Any]  # out-of-fold DR value of this learner's own greedy policy (margin 0)
    weight: float  # in the blend (0: not a member)
    seconds: float
    trees: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    model: PolicyModel
    chosen: Candidate  # the blend's largest member; ``valid_value`` holds the blend's value and the evidence
    candidates: list[Candidate]
    report: EvaluationReport
    sizes: dict[str, int]
    fingerprint: str
    timings: dict[str, float] = field(default_factory=dict)
    splits: dict[str, TrainingSet] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def blend(self) -> str:
        members = [c for c in self.candidates if c.weight > 0]
        return " + ".join(f"{c.weight:.2f} {c.name}" for c in sorted(members, key=lambda c: -c.weight))


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
    fit_set, test_set = split_test(ds, cfg.test_fraction, cfg.seed)
    cfg = cfg.for_rows(len(fit_set.frame))  # num_leaves: auto, by the rows the models will see
    encoder = FeatureEncoder.fit(fit_set.frame, ds.numeric, ds.categorical)
    d = fit_data(fit_set, encoder, catalog)
    revenue = fit_set.frame["revenue"].to_numpy(dtype=np.float64)
    reward = fit_set.rewards(catalog)
    folds = assign_folds(fit_set.frame, cfg.folds, cfg.seed)
    learners, notes = feasible_learners(d, folds, catalog, cfg)
    targets, why = choose_targets(cfg, catalog, d, revenue)
    notes.append(why)
    descriptors = ActionDescriptors.from_catalog(catalog, encoder.feature_names)
    fitter = CrossFitter(catalog, cfg, descriptors, tuple(encoder.categorical_indices), d, revenue, folds, say)
    timings = {"prepare": time.perf_counter() - started}

    value_oof, value_trees = fitter.value_oof() if "conversion" in targets else (None, None)
    fitted: list[CrossFitted] = []
    for target in targets:
        for learner in learners:
            for g, params in enumerate(cfg.grid):
                fitted.append(fitter.crossfit(CandidateSpec(learner, target, g, params)))  # type: ignore[arg-type]
    timings["crossfit"] = time.perf_counter() - started - timings["prepare"]

    control = catalog.index[catalog.control]
    categorical = tuple(encoder.categorical_indices)
    blend = choose_blend(fitted, d, value_oof, reward, folds, control, catalog, cfg, categorical)
    results, weights, gamma = blend.results, blend.weights, blend.gamma
    if blend.overlap is not None:
        notes.append(_overlap_note(blend.overlap.evidence))

    # Refit the members on every row ------------------------------------------------------------------------
    t0 = time.perf_counter()
    members: list[Member] = []
    candidates: list[Candidate] = []
    for r, w, q in zip(results, weights[:-1], blend.q_learners, strict=True):
        spec = r.fitted.spec
        own = ope.from_terms(stacking.policy_terms(q, gamma, control, 0.0), "dr").as_dict()
        head = fitter.refit(r.fitted) if w > 0 else None
        if head is not None:
            offset = fitter.offset if spec.target == "revenue" else None
            members.append(Member(float(w), spec.target, head, r.calibration, spec.name, offset))
        trees = head.trees if head is not None else sum(r.fitted.trees.values())
        candidates.append(
            Candidate(
                spec.learner,
                spec.grid_index,
                spec.target,
                spec.name,
                own,
                float(w),
                r.fitted.seconds,
                trees,
                {**spec.params.model_dump(), "tree_multiple": r.fitted.multiple},
            )
        )
    if weights[-1] > 0:
        mean_revenue = {a: float(v + c) for a, v, c in zip(catalog.ids, blend.average, catalog.costs, strict=True)}
        members.append(Member(float(weights[-1]), "revenue", None, None, "average", mean_revenue))
    candidates.append(
        Candidate(
            "average",
            0,
            "revenue",
            "average",
            ope.from_terms(stacking.policy_terms(blend.q_average, gamma, control, 0.0), "dr").as_dict(),
            float(weights[-1]),
            0.0,
            0,
            {"values": blend.average.tolist()},
        )
    )
    value_head = fitter.value_refit(value_trees) if value_oof is not None else None
    display = _display_conversion(members, results, weights[:-1])
    conversion_results = [i for i, r in enumerate(results) if r.p is not None]
    if display is not None:
        display_member, display_p = display
    elif conversion_results:  # everyone gets one action: the blend's main conversion learner, for P(convert)
        r = results[max(conversion_results, key=lambda i: blend.learner_weights[i])]
        assert r.p is not None
        display_member = Member(0.0, "conversion", fitter.refit(r.fitted), r.calibration, r.fitted.spec.name)
        display_p = r.p
    else:  # no conversion learner: P(convert) for the breakdown from an S-learner of its own
        display_fit = fitter.crossfit(CandidateSpec("s", "conversion", 0, cfg.grid[0]), ladder=(1.0,))
        logged = display_fit.oof[np.arange(len(d)), d.action]
        cal = platt_calibration(logged, d.y) if cfg.calibrate else None
        display_member = Member(0.0, "conversion", fitter.refit(display_fit), cal, display_fit.spec.name)
        display_p = calibrated(display_fit.oof, cal)
    if value_head is None:
        from nextbest.training.heads import constant_value_head

        value_head = constant_value_head(catalog, (d.X, d.action, d.y, revenue))
    assert display_member.head is not None  # a conversion learner, refit on every row
    only_display = len(members) == 1 and members[0] is display_member and members[0].target == "conversion"
    model = PolicyModel(
        encoder,
        catalog.ids,
        catalog.control,
        display_member.head,
        value_head,
        calibration=display_member.calibration,
        decision_margin=blend.margin,
        metadata={
            "learner": _top(candidates).learner,
            "grid_index": _top(candidates).grid_index,
            "params": _top(candidates).params,
            "blend": {c.name: c.weight for c in candidates if c.weight > 0},
            "training_rows": len(fit_set.frame),
        },
        members=() if only_display else tuple(members),
        overlap=blend.overlap.guard if blend.overlap is not None and blend.overlap.taken else None,
    )
    timings["refit"] = time.perf_counter() - t0

    oof_revenue = blend.q_blend + catalog.costs[None, :]
    chosen = _top(candidates)
    blend_terms = stacking.policy_terms(blend.q_blend, gamma, control, blend.margin)
    chosen.valid_value = {
        **ope.from_terms(blend_terms, "dr").as_dict(),
        "selection": {
            "blend": {c.name: c.weight for c in candidates},
            "gates": blend.gates,
            "margin": blend.margin_evidence,
        },
    }
    model.metadata.update(
        feature_service=ds.feature_service,
        data_fingerprint=ds.fingerprint,
        source=ds.source,
        split_seed=cfg.seed,
        test_fraction=cfg.test_fraction,
        folds=cfg.folds,
        catalog_hash=catalog.content_hash,
        catalog=catalog.model_dump(mode="json"),
        margin_relative=blend.margin_evidence.get("relative"),
        value_scale=stacking.value_scale(reward),
    )
    if blend.overlap is not None:  # taken or not
        model.metadata["overlap_guard"] = blend.overlap.evidence
    say("evaluate")
    t0 = time.perf_counter()
    oof_set = with_predictions(fit_set, catalog, display_p, oof_revenue)
    s_oof = scored(fit_set, catalog, display_p, oof_revenue)
    if test_set is not None:
        probs = logging_probs(test_set) if logging_probs else None
        report = evaluate(model, test_set, fit_set, catalog, logging_probs=probs)
        splits = {"test": test_set, "valid": fit_set}
    else:
        probs = logging_probs(fit_set) if logging_probs else None
        report = evaluate_scored(s_oof, s_oof, catalog, blend.margin, logging_probs=probs)
        splits = {"test": oof_set, "valid": oof_set}
    timings["evaluate"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started
    sizes = {"train": len(fit_set.frame), "test": 0 if test_set is None else len(test_set.frame), "folds": cfg.folds}
    return TrainResult(model, chosen, candidates, report, sizes, ds.fingerprint, timings, splits, notes)


def _overlap_note(evidence: dict[str, Any]) -> str:
    """What the overlap guard did, for the training notes."""
    where = (
        f"overlap guard: the log tried an action or the control with probability below {evidence['threshold']:g} "
        f"for some customers, and the learners disagree on an action's effect for {evidence['guarded_share']:.1%}"
        " of the training rows there"
    )
    change = evidence["value_difference"]
    if evidence["taken"]:
        return f"{where}: the model uses the action's average effect for them"
    return (
        f"{where}; their average effect lost value out of fold ({change['value']:+.4g}, se {change['se']:.2g}), "
        "so the model keeps its own estimates"
    )


def _top(candidates: list[Candidate]) -> Candidate:
    """The learner with the largest weight in the blend (the average-effect member is not a learner)."""
    return max((c for c in candidates if c.learner != "average"), key=lambda c: c.weight)


def _display_conversion(
    members: list[Member], results: list[Scored], weights: np.ndarray
) -> tuple[Member, np.ndarray] | None:
    """The conversion member with the largest weight gives P(convert) for the breakdown."""
    best = None
    for r, w in zip(results, weights, strict=True):
        if r.p is not None and w > 0 and (best is None or w > best[1]):
            best = (r, w)
    if best is None:
        return None
    member = next(m for m in members if m.name == best[0].fitted.spec.name)
    assert best[0].p is not None
    return member, best[0].p
