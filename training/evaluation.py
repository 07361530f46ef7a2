"""Honest offline evaluation of a policy model on held-out customers.

* propensity quality: AUC, log loss, Brier, calibration of P(convert | x, logged action);
* uplift ranking: Qini coefficient and AUUC per action against the control (inverse-propensity weighted);
* the whole decision policy (argmax expected net value, ``no_action`` when nothing is positive) estimated
  off-policy with IPS, SNIPS and DR with 95% intervals, beside baselines: random, no action, the best single
  action (picked on the validation split), propensity-only ranking and the logging policy;
* on the synthetic world, the true value of each policy from the ground truth, its ratio to the oracle, the
  lift capture (value - no action) / (oracle - no action) and the share of customers given an action that is
  worse for them than doing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextbest.core import calibration as cal
from nextbest.core import ope
from nextbest.core.arbitration import choose, propensity_only, score_breakdown
from nextbest.core.catalog import ActionCatalog
from nextbest.core.uplift_metrics import auuc, per_action_qini, qini_coefficient
from nextbest.model.policy_model import PolicyModel
from nextbest.training.dataset import TrainingSet

Array = np.ndarray


@dataclass
class Scored:
    """A split scored by a model: everything the estimators need, computed once."""

    X: Array
    action: Array  # logged action, catalog index
    propensity: Array
    converted: Array
    reward: Array  # net value of the logged row
    p: Array  # (n, A) P(convert | x, a)
    revenue: Array  # (n, A) expected revenue
    q_hat: Array  # (n, A) expected net value = revenue - cost
    net_uplift: Array  # (n, A) arbitration net value (incremental, control = 0)
    truth: Array | None  # (n, A) true net value (synthetic world)


def score(model: PolicyModel, ds: TrainingSet, catalog: ActionCatalog, threads: int = 2) -> Scored:
    X = model.encoder.transform_frame(ds.frame)
    p, revenue = model.predict(X, catalog.ids, threads=threads)
    return scored(ds, catalog, p, revenue, X)


def scored(ds: TrainingSet, catalog: ActionCatalog, p: Array, revenue: Array, X: Array | None = None) -> Scored:
    """A split with given predictions (a model's, or the out-of-fold predictions of cross-fitting)."""
    breakdown = score_breakdown(catalog, catalog.ids, p, revenue)
    return Scored(
        X=np.empty((len(ds.frame), 0)) if X is None else X,
        action=ds.action_index(catalog),
        propensity=ds.frame["propensity"].to_numpy(dtype=np.float64),
        converted=ds.frame["converted"].to_numpy(dtype=np.int64),
        reward=ds.rewards(catalog),
        p=p,
        revenue=revenue,
        q_hat=revenue - catalog.costs[None, :],
        net_uplift=breakdown.net_value,
        truth=None if ds.truth is None else ds.truth[[f"net_{a}" for a in catalog.ids]].to_numpy(dtype=np.float64),
    )


def model_policy(s: Scored, catalog: ActionCatalog, margin: float = 0.0) -> Array:
    """The deployed decision rule, offline: best expected net value, control unless it exceeds ``margin``."""
    eligible = np.ones(s.net_uplift.shape, dtype=bool)
    return choose(s.net_uplift, eligible, catalog.index[catalog.control], margin)


def policy_value(s: Scored, target: Array) -> dict[str, Any]:
    """IPS, SNIPS and DR estimates (with 95% intervals) of a target policy given as (n, A) probabilities."""
    args = (s.reward, s.action, s.propensity, target)
    out: dict[str, Any] = {
        "ips": ope.ips(*args).as_dict(),
        "snips": ope.snips(*args).as_dict(),
        "dr": ope.dr(*args, s.q_hat).as_dict(),
        "mix": {},
    }
    if s.truth is not None:
        out["true_value"] = float((target * s.truth).sum(axis=1).mean())
        worse = (s.truth < s.truth[:, [0]] - 1e-9) if s.truth.shape[1] else np.zeros_like(s.truth, bool)
        out["share_worse_than_nothing"] = float((target * worse).sum(axis=1).mean())
    return out


def on_policy_value(s: Scored) -> dict[str, Any]:
    """The logging policy's value is the mean logged reward (no reweighting needed); its true value is
    unknown without the full logging distribution."""
    mean = float(s.reward.mean())
    se = float(s.reward.std(ddof=1) / np.sqrt(s.reward.size))
    est = {
        "method": "on_policy",
        "value": mean,
        "se": se,
        "ci_low": mean - 1.959964 * se,
        "ci_high": mean + 1.959964 * se,
        "n": int(s.reward.size),
    }
    return {"ips": est, "snips": est, "dr": est, "mix": {}}


def _with_truth_summary(policies: dict[str, dict[str, Any]], s: Scored, control: int) -> dict[str, float]:
    if s.truth is None:
        return {}
    oracle = float(s.truth.max(axis=1).mean())
    nothing = float(s.truth[:, control].mean())
    for values in policies.values():
        if "true_value" not in values:
            continue
        v = values["true_value"]
        values["ratio_to_oracle"] = v / oracle if oracle else float("nan")
        values["lift_capture"] = (v - nothing) / (oracle - nothing) if oracle != nothing else float("nan")
    return {"oracle_value": oracle, "no_action_true_value": nothing}


@dataclass
class EvaluationReport:
    n: int
    propensity: dict[str, float | None]  # AUC None where every row converted (or none did)
    calibration: dict[str, list[float]]
    qini: dict[str, dict[str, float]]
    policies: dict[str, dict[str, Any]]
    truth: dict[str, float]
    curves: dict[str, Any] = field(default_factory=dict, repr=False)
    mixes: dict[str, dict[str, float]] = field(default_factory=dict)

    def headline(self, policy: str = "model") -> dict[str, float]:
        """Flat metrics for MLflow."""
        out = {f"propensity_{k}": v for k, v in self.propensity.items() if v is not None}
        for name, values in self.policies.items():
            for est in ("ips", "snips", "dr"):
                out[f"{name}_{est}_value"] = values[est]["value"]
            for key in ("true_value", "ratio_to_oracle", "lift_capture", "share_worse_than_nothing"):
                if key in values:
                    out[f"{name}_{key}"] = values[key]
        for action, q in self.qini.items():
            out[f"qini_{action}"] = q["qini_coefficient"]
        out.update({k: v for k, v in self.truth.items()})
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "propensity": self.propensity,
            "calibration": self.calibration,
            "qini": self.qini,
            "policies": self.policies,
            "truth": self.truth,
            "mixes": self.mixes,
        }


def _one_hot(chosen: Array, n_actions: int) -> Array:
    return ope.deterministic_policy(chosen, n_actions)


def best_single_action(valid: Scored, n_actions: int) -> int:
    """The action whose everyone-gets-it policy has the highest SNIPS value on the validation split."""
    values = [
        ope.snips(
            valid.reward, valid.action, valid.propensity, _one_hot(np.full(valid.reward.size, a), n_actions)
        ).value
        for a in range(n_actions)
    ]
    return int(np.argmax(np.nan_to_num(np.asarray(values), nan=-np.inf)))  # NaN: never logged, no estimate


def evaluate(
    model: PolicyModel,
    test: TrainingSet,
    valid: TrainingSet,
    catalog: ActionCatalog,
    logging_probs: Array | None = None,
) -> EvaluationReport:
    """Evaluate ``model`` on ``test``; ``valid`` only picks the best-single-action baseline."""
    s_valid = score(model, valid, catalog)
    return evaluate_scored(score(model, test, catalog), s_valid, catalog, model.decision_margin, logging_probs)


def evaluate_scored(
    s: Scored,
    valid: Scored,
    catalog: ActionCatalog,
    margin: float,
    logging_probs: Array | None = None,
) -> EvaluationReport:
    """The report for predictions ``s`` decided with ``margin``; ``valid`` picks the best single action."""
    n, n_actions = s.p.shape
    control = catalog.index[catalog.control]
    rows = np.arange(n)
    p_logged = s.p[rows, s.action]
    table = cal.calibration_table(p_logged, s.converted, n_bins=10)
    propensity: dict[str, float | None] = {
        "auc": cal.roc_auc(p_logged, s.converted) if 0 < s.converted.sum() < n else None,  # one class: undefined
        "log_loss": cal.log_loss(p_logged, s.converted),
        "brier": cal.brier_score(p_logged, s.converted),
        "ece": cal.expected_calibration_error(table),
    }
    calibration = {
        "mean_predicted": table.mean_predicted.tolist(),
        "observed_rate": table.observed_rate.tolist(),
        "count": table.count.tolist(),
    }
    weight = 1.0 / s.propensity
    curves = per_action_qini(s.p - s.p[:, [control]], s.action, s.converted, control, catalog.ids, weight=weight)
    qini = {a: {"qini_coefficient": qini_coefficient(c), "auuc": auuc(c)} for a, c in curves.items()}

    chosen = {
        "model": model_policy(s, catalog, margin),
        "no_action": np.full(n, control),
        "best_single_action": np.full(n, best_single_action(valid, n_actions)),
        "propensity_only": propensity_only(catalog, catalog.ids, s.p),
    }
    targets = {name: _one_hot(c, n_actions) for name, c in chosen.items()}
    targets["random"] = ope.uniform_policy(n, n_actions)
    if logging_probs is not None:
        targets["logging"] = logging_probs
    policies = {name: policy_value(s, t) for name, t in targets.items()}
    if logging_probs is None:
        policies["logging"] = on_policy_value(s)
    policies["best_single_action"]["action"] = catalog.ids[int(chosen["best_single_action"][0])]
    mixes = {name: {a: float((c == i).mean()) for i, a in enumerate(catalog.ids)} for name, c in chosen.items()}
    if s.truth is not None:
        mixes["oracle"] = {a: float((s.truth.argmax(axis=1) == i).mean()) for i, a in enumerate(catalog.ids)}
    truth = _with_truth_summary(policies, s, control)
    return EvaluationReport(
        n, propensity, calibration, qini, policies, truth, curves={"qini": curves, "calibration": table}, mixes=mixes
    )
