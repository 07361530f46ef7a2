"""Figures a data scientist would rather look at than read, logged as MLflow artifacts."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from nextbest.training.evaluation import EvaluationReport


def qini_curves(report: EvaluationReport) -> Figure:
    curves = report.curves["qini"]
    cols = 3
    rows = max(1, int(np.ceil(len(curves) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, (action, curve) in zip(axes.flat, curves.items(), strict=False):
        ax.plot(curve.fraction, curve.gain, label="model")
        ax.plot([0, 1], [0, curve.gain[-1]], "--", color="grey", label="random")
        ax.set_title(f"{action} (Qini {report.qini[action]['qini_coefficient']:.4f})", fontsize=9)
        ax.set_xlabel("fraction targeted")
        ax.set_ylabel("incremental conversions / customer")
    for ax in list(axes.flat)[len(curves) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def calibration(report: EvaluationReport) -> Figure:
    cal = report.calibration
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.plot(cal["mean_predicted"], cal["observed_rate"], "o-")
    top = max(max(cal["mean_predicted"]), max(cal["observed_rate"])) * 1.05
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("predicted P(convert | logged action)")
    ax.set_ylabel("observed conversion rate")
    ax.set_title(f"calibration (ECE {report.propensity['ece']:.4f})")
    fig.tight_layout()
    return fig


def decision_mix(report: EvaluationReport) -> Figure:
    mixes = report.mixes
    actions = list(next(iter(mixes.values())))
    names = [n for n in ("model", "oracle", "propensity_only", "best_single_action") if n in mixes]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(names)
    x = np.arange(len(actions))
    for i, name in enumerate(names):
        ax.bar(x + i * width, [mixes[name][a] for a in actions], width, label=name)
    ax.set_xticks(x + width * (len(names) - 1) / 2, actions, rotation=20, fontsize=8)
    ax.set_ylabel("share of customers")
    ax.set_title("decision mix on held-out customers")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def policy_values(report: EvaluationReport) -> Figure:
    names = list(report.policies)
    dr = [report.policies[n]["dr"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    y = np.arange(len(names))
    ax.errorbar(
        [d["value"] for d in dr],
        y,
        xerr=[[d["value"] - d["ci_low"] for d in dr], [d["ci_high"] - d["value"] for d in dr]],
        fmt="o",
        label="DR 95% CI",
    )
    if "oracle_value" in report.truth:
        ax.scatter(
            [report.policies[n].get("true_value", np.nan) for n in names],
            y,
            marker="x",
            color="black",
            label="true value",
        )
        ax.axvline(report.truth["oracle_value"], color="green", ls="--", label="oracle")
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("net value per customer")
    ax.set_title("policy value, held-out customers")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def feature_importance(names: list[str], gains: np.ndarray, top: int = 20) -> Figure:
    order = np.argsort(gains)[::-1][:top]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(order) + 1))
    ax.barh([names[i] for i in order][::-1], gains[order][::-1])
    ax.set_xlabel("total gain")
    ax.set_title("feature importance (conversion model)")
    fig.tight_layout()
    return fig


def all_figures(report: EvaluationReport, importance: tuple[list[str], np.ndarray] | None) -> dict[str, Any]:
    figs = {
        "qini_curves.png": qini_curves(report),
        "calibration.png": calibration(report),
        "decision_mix.png": decision_mix(report),
        "policy_values.png": policy_values(report),
    }
    if importance is not None:
        figs["feature_importance.png"] = feature_importance(*importance)
    return figs


def loop_curve(report: Any) -> Figure:
    """True value per round of the closed loop against the oracles and doing nothing."""
    rounds = [r.round for r in report.rounds]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.plot(rounds, [r.true_value for r in report.rounds], "o-", label="served decisions (true value)")
    ax.plot(
        rounds,
        [r.eligible_oracle_value for r in report.rounds],
        "--",
        color="green",
        label="oracle within the guardrails",
    )
    ax.plot(rounds, [r.oracle_value for r in report.rounds], ":", color="green", label="oracle, no guardrails")
    ax.plot(rounds, [r.no_action_value for r in report.rounds], "--", color="grey", label="doing nothing")
    challengers = [(r.round, r.challenger_policy_value) for r in report.rounds if r.challenger_policy_value]
    if challengers:
        ax.plot(
            *zip(*challengers, strict=True),
            "x",
            color="tab:orange",
            label="challenger retrained after the round (true, greedy)",
        )
    for r in report.rounds:
        if r.promoted:
            ax.annotate(
                "promoted", (r.round, r.true_value), textcoords="offset points", xytext=(0, 8), fontsize=7, ha="center"
            )
    ax.set_xlabel("round (each: decide, observe, retrain, gate)")
    ax.set_ylabel("net value per customer")
    ax.set_xticks(rounds)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("closed loop from a weak start")
    fig.tight_layout()
    return fig
