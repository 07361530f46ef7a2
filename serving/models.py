"""Where the serving model comes from: a directory bundled into the Bento at build time, or the MLflow
registry's alias (``@champion``). Loading never raises: a failure is reported and the service serves the
documented fallback until a model loads."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from nextbest.model.policy_model import PolicyModel
from nextbest.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    model: PolicyModel | None
    version: str | None
    source: str
    error: str | None = None
    loaded_at: float = 0.0


def load_serving_model(settings: Settings) -> LoadedModel:
    """The model the service should use now (never raises)."""
    serving = settings.serving
    source = f"models:/{serving.model_name}@{serving.model_alias}"
    try:
        if serving.model_dir is not None:
            source = str(serving.model_dir)
            model = PolicyModel.load(Path(serving.model_dir))
            version = str(model.metadata.get("version", "bundled"))
        else:
            from nextbest.model.registry import load_version, use_store

            assert settings.mlflow_tracking_uri is not None
            use_store(settings.mlflow_tracking_uri)
            model, record = load_version(serving.model_name, serving.model_alias, settings.home / "models")
            version = str(record.version)
        return LoadedModel(model, version, source, None, time.time())
    except Exception as exc:
        message = f"model {source} failed to load: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.warning(message)
        return LoadedModel(None, None, source, message, time.time())


def load_model_ref(settings: Settings, ref: str | None) -> PolicyModel:
    """For batch jobs: a model directory, a registry alias or version, or the configured alias (raises)."""
    from nextbest.model.registry import load_version, use_store

    if ref is not None and Path(ref).is_dir():
        return PolicyModel.load(Path(ref))
    assert settings.mlflow_tracking_uri is not None
    use_store(settings.mlflow_tracking_uri)
    model, _ = load_version(settings.serving.model_name, ref or settings.serving.model_alias, settings.home / "models")
    return model
