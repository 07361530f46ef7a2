"""Loading registered model versions from the MLflow registry, shared by training (evaluation, promotion)
and serving (the champion). Versions are downloaded once into a local cache keyed by name, version and run id
(version numbers repeat across registries; run ids do not)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from nextbest.errors import NotFoundError
from nextbest.model.policy_model import PolicyModel

CHALLENGER = "challenger"
CHAMPION = "champion"


def use_store(uri: str) -> None:
    """Point MLflow tracking and registry at ``uri`` (absolute SQLite path by default)."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep CLI output readable
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def resolve_version(name: str, ref: str) -> Any:
    """A model version by alias (``champion``, ``challenger``) or number."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        raise NotFoundError(f"model {name!r} has no version {ref!r} in the registry") from exc


def load_version(name: str, ref: str, cache: Path | None = None) -> tuple[PolicyModel, Any]:
    """The native model of a registered version (alias or number); returns (model, version record)."""
    import mlflow

    record = resolve_version(name, ref)
    base = cache or Path(tempfile.mkdtemp(prefix="nextbest-model-"))
    target = base / name / f"{record.version}-{record.run_id}"
    bundle = target / "artifacts" / "policy_model"
    if not (bundle / "model.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        uri = f"models:/{name}/{record.version}"
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target))
        bundle = Path(path) / "artifacts" / "policy_model"
    model = PolicyModel.load(bundle)
    model.metadata["version"] = int(record.version)
    model.metadata["registry_name"] = name
    return model, record
