"""The jobs behind ``nextbest train`` and ``nextbest evaluate`` (and their MLproject entry points): build the
data set, train and select, evaluate, log everything to MLflow, register the new version as ``@challenger``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.core.catalog import ActionCatalog
from nextbest.settings import Settings
from nextbest.training import plots, tracking
from nextbest.training.config import TrainConfig
from nextbest.training.dataset import TrainingSet, from_decision_log, from_feast, load_file, logged_feature_service
from nextbest.training.evaluation import EvaluationReport, evaluate_scored
from nextbest.training.pipeline import TrainResult, train

Progress = Callable[[str], None]


@dataclass
class TrainingOutcome:
    result: TrainResult
    run_id: str
    version: int | None
    model_uri: str | None


def build_dataset(settings: Settings, catalog: ActionCatalog, cfg: TrainConfig, data: Path | None) -> TrainingSet:
    """Your file when given, else point-in-time features from the Feast offline store over the campaign log."""
    if data is not None:
        return load_file(data, catalog, cfg.min_rows_per_action)
    from nextbest.features.store import open_store, require_world

    assert settings.data_dir is not None
    require_world(settings.data_dir)
    return from_feast(open_store(settings), settings.data_dir, catalog, cfg.feature_service, cfg.min_rows_per_action)


def world_logging_policy(settings: Settings, catalog: ActionCatalog, ds: TrainingSet) -> Callable[[TrainingSet], Any]:
    """On the synthetic world the whole logging distribution is known, which lets the logging policy's true
    value be computed; elsewhere only the logged action's probability is."""
    if not ds.source.startswith("feast:") or settings.data_dir is None:
        return lambda _part: None
    if not (settings.data_dir / "manifest.json").is_file() or "tier" not in ds.frame.columns:
        return lambda _part: None
    from nextbest.world.campaign import logging_probabilities

    return lambda part: logging_probabilities(part.frame["tier"].astype(str).to_numpy(), catalog)


def frame_to_set(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    catalog: ActionCatalog,
    source: str,
    feature_service: str | None,
) -> TrainingSet:
    cols = [f"net_{a}" for a in catalog.ids]
    truth = frame[cols].reset_index(drop=True) if all(c in frame.columns for c in cols) else None
    return TrainingSet(frame.reset_index(drop=True), numeric, categorical, source, feature_service, truth)


def _log_report(report: EvaluationReport, result_model: Any) -> None:
    import mlflow

    mlflow.log_metrics(tracking.flat_metrics(report.headline()))
    tracking.log_json(report.as_dict(), "evaluation/report.json")
    for name, fig in plots.all_figures(report, tracking.importance(result_model)).items():
        mlflow.log_figure(fig, f"plots/{name}")
    import matplotlib.pyplot as plt

    plt.close("all")


def run_training(
    settings: Settings,
    catalog: ActionCatalog,
    cfg: TrainConfig,
    data: Path | None = None,
    register: bool = True,
    progress: Progress | None = None,
    dataset: TrainingSet | None = None,
    run_name: str = "train",
) -> TrainingOutcome:
    """Train on ``dataset`` when given, else on your file (``data``), else on Feast over the campaign log."""
    import mlflow

    say = progress or (lambda _m: None)
    tracking.configure(settings, cfg.experiment)
    with mlflow.start_run(run_name=run_name) as parent:
        with mlflow.start_run(run_name="dataset", nested=True):
            say("build the training set")
            ds = dataset if dataset is not None else build_dataset(settings, catalog, cfg, data)
            mlflow.log_params({"source": ds.source, "rows": len(ds.frame), "features": len(ds.features)})
            mlflow.set_tags(
                {
                    "feature_service": str(ds.feature_service),
                    "data_fingerprint": ds.fingerprint,
                    "notes": "; ".join(ds.notes) or "none",
                }
            )
        mlflow.log_params({k: str(v) for k, v in cfg.model_dump().items() if k != "grid"})
        mlflow.set_tags(
            {
                "feature_service": str(ds.feature_service),
                "data_fingerprint": ds.fingerprint,
                "catalog_version": catalog.version,
                "catalog_hash": catalog.content_hash,
                "source": ds.source,
            }
        )
        result = train(ds, catalog, cfg, progress=say, logging_probs=world_logging_policy(settings, catalog, ds))
        # the data's own notes first (columns filled in or read as truth, rows skipped), so `train` prints them
        result.notes[:0] = [n for n in ds.notes if n not in result.notes]
        if result.notes:
            mlflow.set_tag("training_notes", "; ".join(result.notes))
        for c in result.candidates:
            if c.learner == "average":  # not a fit: the blend's shrinkage toward each action's average value
                mlflow.log_metric("blend_shrinkage", c.weight)
                continue
            with mlflow.start_run(run_name=f"fit-{c.name}", nested=True):
                mlflow.log_params({"learner": c.learner, "target": c.target, **c.params})
                mlflow.log_metrics(
                    {
                        "oof_dr_value": c.valid_value["value"],
                        "oof_dr_se": c.valid_value["se"],
                        "blend_weight": c.weight,
                        "fit_seconds": c.seconds,
                        "trees": c.trees,
                    }
                )
        with mlflow.start_run(run_name="evaluate", nested=True):
            _log_report(result.report, result.model)
        mlflow.log_metrics(tracking.flat_metrics(result.report.headline()))
        mlflow.log_metrics({f"seconds_{k}": v for k, v in result.timings.items()})
        mlflow.log_params(
            {
                "chosen_learner": result.chosen.learner,
                "chosen_grid": result.chosen.grid_index,
                "blend": result.blend,
                "chosen_decision_margin": result.model.decision_margin,
                "training_rows": result.sizes["train"],
            }
        )
        tracking.log_json(result.chosen.valid_value, "selection.json")
        _log_splits(settings, result)
        version = uri = None
        if register:
            say("register the model as @challenger")
            tags = {
                "feature_service": str(ds.feature_service),
                "data_fingerprint": ds.fingerprint,
                "learner": result.chosen.learner,
                "source": ds.source,
                "model_dr_value": f"{result.report.policies['model']['dr']['value']:.4f}",
            }
            uri, version = tracking.log_policy_model(result.model, result.splits["test"].frame, cfg.model_name, tags)
        return TrainingOutcome(result, parent.info.run_id, version, uri)


def _log_splits(settings: Settings, result: TrainResult) -> None:
    """The held-out rows, so evaluation and promotion can re-score exactly the same customers later."""
    import mlflow

    tmp = settings.home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    for split_name in ("test", "valid"):
        file = tmp / f"{split_name}.parquet"
        result.splits[split_name].frame.to_parquet(file)
        mlflow.log_artifact(str(file), artifact_path="evaluation")
        file.unlink()


def run_evaluation(settings: Settings, catalog: ActionCatalog, cfg: TrainConfig, ref: str) -> EvaluationReport:
    """Re-evaluate a registered version on the held-out rows logged with its training run."""
    import mlflow

    tracking.configure(settings, cfg.experiment)
    model, record = tracking.load_version(cfg.model_name, ref)
    test = logged_set(record, "test", model, catalog)
    valid = logged_set(record, "valid", model, catalog)
    probs = world_logging_policy(settings, catalog, test)(test) if "tier" in test.frame else None
    s_test, s_valid = scored_for(model, test, catalog), scored_for(model, valid, catalog)
    report = evaluate_scored(s_test, s_valid, catalog, model.decision_margin, logging_probs=probs)
    with mlflow.start_run(run_name=f"evaluate-v{record.version}"):
        mlflow.set_tags({"model_version": str(record.version), "model_name": cfg.model_name})
        _log_report(report, model)
    return report


def logged_set(record: Any, split_name: str, model: Any, catalog: ActionCatalog) -> TrainingSet:
    """A split logged with a model's training run: held-out customers, or (cross-fitted) every training row
    with its out-of-fold predictions (see :func:`scored_for`)."""
    frame = tracking.logged_split(record, split_name)
    enc = model.encoder
    return frame_to_set(
        frame,
        list(enc.numeric),
        list(enc.categorical),
        catalog,
        str(model.metadata.get("source", "")),
        model.metadata.get("feature_service"),
    )


def scored_for(model: Any, ds: TrainingSet, catalog: ActionCatalog) -> Any:
    """A model's scores on its own logged evaluation rows: the out-of-fold predictions logged with them when
    the model was trained on those rows (scoring its own training data would flatter it), else the model's."""
    from nextbest.training.evaluation import score, scored
    from nextbest.training.oof_rows import logged_predictions

    found = logged_predictions(ds.frame, catalog.ids)
    if found is None:
        return score(model, ds, catalog)
    return scored(ds, catalog, *found)


def policy_summary(report: EvaluationReport) -> list[dict[str, Any]]:
    rows = []
    for name, values in report.policies.items():
        dr = values["dr"]
        rows.append(
            {
                "policy": name,
                "dr": dr["value"],
                "ci": (dr["ci_low"], dr["ci_high"]),
                "true": values.get("true_value", np.nan),
                "ratio": values.get("ratio_to_oracle", np.nan),
                "capture": values.get("lift_capture", np.nan),
                "worse": values.get("share_worse_than_nothing", np.nan),
            }
        )
    return rows


def log_dataset(settings: Settings, catalog: ActionCatalog, cfg: TrainConfig, since_days: float | None) -> TrainingSet:
    """The decision log (decisions joined with their feedback) as a training set."""
    import time

    from nextbest.io.decision_log import open_decision_log

    assert settings.decision_log_url is not None
    since = time.time() - since_days * 86_400 if since_days else None
    with open_decision_log(settings.decision_log_url) as log:
        rows = log.training_rows(since=since)
    service = logged_feature_service(rows, cfg.feature_service)  # what the logged decisions were served with
    return from_decision_log(rows, catalog, service, cfg.min_rows_per_action)


def run_retraining(
    settings: Settings,
    catalog: ActionCatalog,
    cfg: TrainConfig,
    since_days: float | None = None,
    promote_after: bool = True,
    progress: Progress | None = None,
) -> tuple[TrainingOutcome, Any]:
    """Closing the loop: train a challenger on the service's own logs, then the promotion gate decides."""
    from nextbest.training.promotion import promote

    ds = log_dataset(settings, catalog, cfg, since_days)
    outcome = run_training(settings, catalog, cfg, progress=progress, dataset=ds, run_name="retrain")
    decision = promote(settings, catalog, cfg) if promote_after else None
    return outcome, decision
