"""MLflow: tracking runs, the model registry and aliases.

Every training run is a parent run with nested runs per step (dataset, one per tuning candidate, evaluation,
registration). The model is logged as a pyfunc with its native LightGBM files as an artifact, with explicit
pip requirements (inference of requirements takes seconds), a signature, the FeatureService name and the
data fingerprint as tags, and the held-out evaluation split, so promotion can re-score the same rows.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nextbest.errors import UnavailableError
from nextbest.model.policy_model import PolicyModel
from nextbest.model.registry import CHALLENGER, CHAMPION, load_version, resolve_version, use_store

__all__ = ["CHALLENGER", "CHAMPION", "configure", "load_version", "log_policy_model", "resolve_version"]
from nextbest.settings import Settings


def configure(settings: Settings, experiment: str) -> Any:
    """Point MLflow at the configured store (absolute SQLite path by default) and select the experiment."""
    import os

    import mlflow

    uri = settings.mlflow_tracking_uri
    assert uri is not None
    use_store(uri)
    if os.environ.get("MLFLOW_RUN_ID"):  # launched by `mlflow run`: log into the project run's experiment
        return None
    try:
        if uri.startswith("sqlite:///") and mlflow.get_experiment_by_name(experiment) is None:
            # Artifacts beside the store (under NEXTBEST_HOME), not in MLflow's default ./mlruns of whatever
            # directory the first run happened to start in.
            root = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
            with contextlib.suppress(Exception):  # created meanwhile by another process: set_experiment finds it
                mlflow.create_experiment(experiment, artifact_location=root.as_uri())
        return mlflow.set_experiment(experiment)
    except Exception as exc:
        raise UnavailableError(f"MLflow tracking store {uri} is not reachable: {exc}") from exc


def pip_requirements() -> list[str]:
    names = ("lightgbm", "numpy", "pandas", "scikit-learn", "mlflow", "pydantic", "pyyaml")
    return [f"{n}=={version(n)}" for n in names]


def importance(model: PolicyModel) -> tuple[list[str], np.ndarray]:
    """Total gain per input of the conversion head (features, plus action descriptors for the S-learner)."""
    from nextbest.model.descriptors import NAMES

    names = list(model.feature_names) + (list(NAMES) if model.conversion.descriptors is not None else [])
    total = np.zeros(len(names))
    for booster in model.conversion.boosters.values():
        total += booster.feature_importance("gain")
    return names, total


def log_policy_model(model: PolicyModel, example: pd.DataFrame, name: str, tags: dict[str, str]) -> tuple[str, int]:
    """Log the model under the active run and register a new version; returns (model URI, version)."""
    import mlflow
    from mlflow.models import infer_signature

    from nextbest.model.pyfunc import PolicyModelPyfunc, predictions_frame

    with tempfile.TemporaryDirectory() as tmp:
        bundle = model.save(Path(tmp) / "policy_model")
        sample = example[list(model.feature_names)].head(20)
        # Integers as floats: a model input may be missing, and MLflow's schema has no nullable integer.
        sample = sample.astype({c: "float64" for c in model.encoder.numeric})
        info = mlflow.pyfunc.log_model(
            name="policy_model",
            python_model=PolicyModelPyfunc(),
            artifacts={"policy_model": str(bundle)},
            signature=infer_signature(sample, predictions_frame(model, sample)),
            pip_requirements=pip_requirements(),
            registered_model_name=name,
            tags=tags,
        )
    version_ = int(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version_), key, value)
    client.set_registered_model_alias(name, CHALLENGER, str(version_))
    return info.model_uri, version_


def logged_split(record: Any, split_name: str) -> pd.DataFrame:
    """A split (``test`` or ``valid``) logged with the training run that produced a model version."""
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=record.run_id, artifact_path=f"evaluation/{split_name}.parquet")
    return pd.read_parquet(path)


def log_json(data: dict[str, Any], path: str) -> None:
    import mlflow

    mlflow.log_text(json.dumps(data, indent=2, default=_jsonable), path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def flat_metrics(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float | np.floating) and np.isfinite(v)}
