"""Choosing on the out-of-fold predictions of the cross-fitted candidates (``training.crossfit``): each
candidate's tree multiple on the decisions' own loss, the learner a blend must beat, the blend's weights, its
shrinkage toward the average effect and the decision margin. ``training.pipeline`` refits what is chosen here
on every row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.model.heads import calibrated
from nextbest.training import stacking
from nextbest.training.config import TrainConfig
from nextbest.training.crossfit import CrossFitted
from nextbest.training.heads import platt_calibration
from nextbest.training.learners import FitData
from nextbest.training.overlap import OverlapFit, fit_overlap


@dataclass
class Scored:
    """One cross-fitted candidate's out-of-fold predictions in decision terms."""

    fitted: CrossFitted
    p: np.ndarray | None  # calibrated P(convert), conversion candidates
    revenue: np.ndarray
    calibration: tuple[float, float] | None


@dataclass
class Blend:
    """The choice, in out-of-fold net values per action (revenue less the actions' costs)."""

    results: list[Scored]  # every candidate at its chosen tree multiple
    q_learners: list[np.ndarray]  # their net values
    gamma: np.ndarray  # the DR targets of the net values' contrasts to the control (``stacking.dr_targets``)
    learner_weights: np.ndarray  # the candidates' weights before shrinkage
    weights: np.ndarray  # the members' weights: the candidates, then the average-effect member
    average: np.ndarray  # the average-effect member's net value per action
    q_average: np.ndarray  # that net value on every row
    q_blend: np.ndarray  # the blend's net values
    margin: float  # the decision margin
    margin_evidence: dict[str, Any]
    gates: dict[str, Any]  # evidence of the anchor's, the blend's and the shrinkage's gates, and the overlap guard
    overlap: OverlapFit | None = None  # the guard, when the log's overlap is thin somewhere (``taken`` or not)


def choose_blend(
    fitted: list[CrossFitted],
    d: FitData,
    value_oof: np.ndarray | None,
    reward: np.ndarray,
    folds: np.ndarray,
    control: int,
    catalog: ActionCatalog,
    cfg: TrainConfig,
    categorical: Sequence[int] = (),
) -> Blend:
    """Each candidate's tree multiple (its ``multiple`` is set), then the blend: stacked against an anchor (or
    the single best learner without ``cfg.stacking``), shrunk toward the average effect, guarded where the log's
    overlap is thin (``training.overlap``), and its margin."""
    levels = [{m: _decision_terms(f, m, d, value_oof, cfg.calibrate, catalog.costs) for m in f.levels} for f in fitted]
    q_base = [lv[1.0].revenue - catalog.costs[None, :] for lv in levels]
    gamma = stacking.dr_targets(np.mean(q_base, axis=0), d.action, reward, d.propensity)
    results: list[Scored] = []
    for f, lv in zip(fitted, levels, strict=True):  # each learner's tree count, on the decisions' own loss
        losses = {m: stacking.contrast_loss(lv[m].revenue - catalog.costs[None, :], gamma, control) for m in lv}
        f.multiple = min(losses, key=losses.__getitem__)
        results.append(lv[f.multiple])
    q_learners = [r.revenue - catalog.costs[None, :] for r in results]
    gamma = stacking.dr_targets(np.mean(q_learners, axis=0), d.action, reward, d.propensity)
    gates: dict[str, Any] = {}
    if cfg.stacking:
        anchor, anchor_gate = _anchor(results, q_learners, gamma, control, folds)
        if anchor_gate is not None:
            gates["anchor"] = anchor_gate
        learner_weights, blend_gate = stacking.blend_weights(q_learners, gamma, control, folds, anchor)
        if blend_gate is not None:
            gates["blend"] = {"anchor": results[anchor].fitted.spec.name, **blend_gate.as_dict()}
            # evidence only: the same step judged by the out-of-fold DR value of its decisions
            by_value = stacking.policy_gate([q_learners[anchor]], q_learners, gamma, control, folds, stacking.GATE_Z)
            gates["blend"]["policy_value"] = by_value.as_dict()
    else:
        learner_weights = _single(q_learners, gamma, control)
    q_plain = sum(w * q for w, q in zip(learner_weights, q_learners, strict=True))
    assert isinstance(q_plain, np.ndarray)
    if cfg.stacking:
        shrunk = stacking.shrinkage(q_plain, gamma, control, folds)
        shrink, average = shrunk.weight, shrunk.average
        gates["shrinkage"] = shrunk.as_dict()
    else:
        shrink, average = 0.0, q_plain.mean(axis=0)
    weights = np.append((1.0 - shrink) * learner_weights, shrink)  # the learners, then the average member
    q_oof = [*q_learners, np.tile(average, (len(d), 1))]
    q_blend = (1.0 - shrink) * q_plain + shrink * q_oof[-1]
    overlap = None
    if cfg.stacking:
        members = [q for w, q in zip(learner_weights, q_learners, strict=True) if w > 0]
        threshold, seed, threads = cfg.overlap_guard, cfg.seed, cfg.threads
        overlap = fit_overlap(
            d, folds, catalog, members, q_blend, average, gamma, threshold, categorical, seed, threads
        )
        if overlap is not None:
            gates["overlap"] = overlap.evidence
            q_blend = overlap.q_blend if overlap.taken else q_blend
    if cfg.decision_margin == "auto":
        scale = stacking.value_scale(reward)
        floor = cfg.decision_margin_floor
        margin = stacking.choose_margin(q_blend, gamma, control, scale, propensity=d.propensity, floor=floor)
        margin_value, margin_evidence = margin.margin, {"relative": margin.relative, **margin.evidence}
    else:
        margin_value, margin_evidence = float(cfg.decision_margin), {"configured": float(cfg.decision_margin)}
    margin_evidence["shrinkage"] = shrink
    return Blend(
        results,
        q_learners,
        gamma,
        learner_weights,
        weights,
        average,
        q_oof[-1],
        q_blend,
        margin_value,
        margin_evidence,
        gates,
        overlap,
    )


def _decision_terms(
    fitted: CrossFitted,
    multiple: float,
    d: FitData,
    value_oof: np.ndarray | None,
    calibrate: bool,
    costs: np.ndarray,
) -> Scored:
    """A candidate's out-of-fold predictions at one tree multiple, as expected revenue per action."""
    raw = fitted.levels[multiple]
    if fitted.spec.target != "conversion":  # net value: the costs back in, for expected revenue
        return Scored(fitted, None, raw + costs[None, :], None)
    assert value_oof is not None
    cal = platt_calibration(raw[np.arange(len(d)), d.action], d.y) if calibrate else None
    p = calibrated(raw, cal)
    return Scored(fitted, p, p * value_oof, cal)


def _anchor(
    results: list[Scored], q_oof: list[np.ndarray], gamma: np.ndarray, control: int, folds: np.ndarray
) -> tuple[int, dict[str, Any] | None]:
    """The learner a blend must beat: an S-learner (one model shared by every action, the least variable on few
    rows); any learner when there is none. Of several S-learners, the first fitted (the decomposed P(convert) x
    order value where conversions drive revenue) stands unless another explains the DR contrasts better out
    of sample beyond noise (``stacking.gate``): on the synthetic world at 10,000 rows, picking the lower
    out-of-fold loss alone chose the revenue S-learner on two seeds of three and lost 6-7 points of lift
    capture against the conversion one. Returns the anchor and the evidence (None without a contest)."""
    shared = [i for i, r in enumerate(results) if r.fitted.spec.learner == "s"] or list(range(len(results)))
    first = shared[0]
    if len(shared) == 1:
        return first, None
    best = min(shared, key=lambda i: stacking.contrast_loss(q_oof[i], gamma, control))
    if best == first:
        return first, None
    evidence = stacking.gate([q_oof[first]], [q_oof[best]], gamma, control, folds, stacking.GATE_Z)
    chosen = best if evidence.taken else first
    names = {"default": results[first].fitted.spec.name, "challenger": results[best].fitted.spec.name}
    return chosen, {**names, **evidence.as_dict()}


def _single(q_oof: list[np.ndarray], gamma: np.ndarray, control: int) -> np.ndarray:
    """Without stacking: the learner whose greedy policy has the best out-of-fold DR value."""
    values = [stacking.policy_terms(q, gamma, control, 0.0).mean() for q in q_oof]
    weights = np.zeros(len(q_oof))
    weights[int(np.argmax(values))] = 1.0
    return weights
