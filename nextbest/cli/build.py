"""``nextbest build``: a deployable Bento that serves without the MLflow server.

The registry's champion is downloaded, stamped with its registry version (so decisions report it) and
imported into the BentoML model store with ``bentoml.mlflow.import_model``; the Bento references it by tag,
so ``bentoml export`` and ``bentoml containerize`` carry it along. ``bentoml build`` then runs on a staged
build context holding the package in its installed layout (in this checkout ``serving/``, ``features/`` and
``training/`` sit beside ``nextbest/``, which a Bento's ``src/`` cannot map), the feature store configs, and
the configured catalog, rules and rule parameters, which the service uses by default inside the Bento.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import yaml

from nextbest.cli.common import console, settings_from
from nextbest.errors import ConfigError, NotFoundError, UnavailableError
from nextbest.settings import PACKAGE_DIR, Settings

MANIFEST = "nextbest-bento.json"  # read by nextbest.serving.service inside the Bento
POLICY_MODEL = "mlflow_model/artifacts/policy_model"  # inside a model imported by bentoml.mlflow
STAGE_PACKAGES = ("features", "training", "serving")  # installed as nextbest.<name> from top-level folders
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def without_password(uri: str) -> str:
    """A store URI fit for labels and logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def check_pins(bentofile: dict[str, Any], project_dir: Path) -> None:
    """The Bento installs exactly the project's pinned dependencies (when the checkout's pyproject is here)."""
    import tomllib

    pyproject = project_dir / "pyproject.toml"
    if not pyproject.is_file():
        return
    wanted = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    listed = (bentofile.get("python") or {}).get("packages")
    if listed is not None and sorted(listed) != sorted(wanted):  # (a requirements_txt is the user's call)
        missing, extra = sorted(set(wanted) - set(listed)), sorted(set(listed) - set(wanted))
        raise ConfigError(
            f"bentofile python.packages differ from pyproject.toml dependencies: missing {missing}, extra {extra}"
        )


def import_champion(settings: Settings, ref: str) -> tuple[Any, Any]:
    """Import registry version ``ref`` (alias or number) into the BentoML model store, or reuse the import of
    the same version from the same store. Returns (BentoML model, registry version record)."""
    import bentoml
    import mlflow

    from nextbest.model.policy_model import PolicyModel
    from nextbest.model.registry import resolve_version, use_store

    assert settings.mlflow_tracking_uri is not None
    use_store(settings.mlflow_tracking_uri)
    name = settings.serving.model_name
    try:
        record = resolve_version(name, ref)
    except NotFoundError:
        raise
    except Exception as exc:
        raise UnavailableError(f"MLflow registry {without_password(settings.mlflow_tracking_uri)}: {exc}") from exc
    labels = {
        "mlflow_model": name,
        "mlflow_version": str(record.version),
        "mlflow_run_id": str(record.run_id),
        "mlflow_store": without_password(settings.mlflow_tracking_uri)[:250],
    }
    try:
        imported = bentoml.models.list(name)
    except bentoml.exceptions.NotFound:
        imported = []
    for existing in imported:
        if all(existing.info.labels.get(k) == v for k, v in labels.items()):
            return existing, record
    with tempfile.TemporaryDirectory(prefix="nextbest-export-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{record.version}", dst_path=tmp))
        manifest_file = local / "artifacts" / "policy_model" / "model.json"
        manifest = json.loads(manifest_file.read_text())
        manifest["metadata"].update({"version": int(record.version), "registry_name": name})
        manifest_file.write_text(json.dumps(manifest, indent=2, default=str))
        PolicyModel.load(manifest_file.parent)  # fail here, not in the service
        model = bentoml.mlflow.import_model(
            name,
            model_uri=str(local),
            labels={**labels, "mlflow_ref": ref},
            metadata={"registered_at": str(record.creation_timestamp), "aliases": ",".join(record.aliases or [])},
        )
    return model, record


def check_model_catalog(manifest: Path, catalog: Any, version: Any) -> None:
    """Refuse to package a model with a catalog it does not fit: the Bento's service would refuse its own model."""
    from nextbest.core.contract import compare_catalogs, model_catalog

    trained = model_catalog(json.loads(manifest.read_text()).get("metadata", {}))
    diff = compare_catalogs(trained, catalog) if trained is not None else None
    if diff is not None and not diff.compatible:
        raise ConfigError(f"model v{version} does not fit the catalog being packaged: {diff.describe()}")


def stage_context(settings: Settings, target: Path, bentofile: dict[str, Any], manifest: dict[str, Any]) -> Path:
    """Lay out the build context (see the module docstring); returns the staged bentofile."""
    pkg = target / "nextbest"
    shutil.copytree(PACKAGE_DIR, pkg, ignore=_IGNORE, dirs_exist_ok=True)
    for name in STAGE_PACKAGES:
        source = Path(importlib.import_module(f"nextbest.{name}").__path__[0])
        shutil.copytree(source, pkg / name, ignore=_IGNORE, dirs_exist_ok=True)
    features, configs = target / "features", settings.features_dir
    if not (configs / "feature_store.yaml").is_file():  # an installed package: its own copy of the configs
        configs = pkg / "features"
    (features / "environments").mkdir(parents=True)
    for file in [*configs.glob("*.yaml"), *configs.glob("environments/*.yaml"), *configs.glob(".feastignore")]:
        shutil.copy(file, features / file.relative_to(configs))
    assert settings.catalog_path and settings.rules_path and settings.rule_params_path
    files = {
        "catalog_path": (settings.catalog_path, Path("catalog") / settings.catalog_path.name),
        "rules_path": (settings.rules_path, Path("rules") / settings.rules_path.name),
        "rule_params_path": (settings.rule_params_path, Path("rules/params") / settings.rule_params_path.name),
    }
    for key, (source, relative) in files.items():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target / relative)
        manifest[key] = relative.as_posix()
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))
    staged = target / "bentofile.yaml"
    staged.write_text(yaml.safe_dump(bentofile, sort_keys=False))
    return staged


def run_bentoml_build(context: Path, bentofile: Path, version: str | None) -> str:
    """``bentoml build`` on the staged context; returns the Bento tag."""
    command = [str(Path(sys.executable).with_name("bentoml")), "build", str(context), "-f", str(bentofile)]
    command += ["--output", "tag", *(["--version", version] if version else [])]
    done = subprocess.run(command, cwd=context, capture_output=True, text=True, env=os.environ.copy())
    found = re.search(r"__tag__:(\S+)", done.stdout)
    if done.returncode != 0 or found is None:
        output = (done.stderr.strip() or done.stdout.strip()).splitlines()[-15:]
        raise ConfigError("bentoml build failed:\n" + "\n".join(output))
    return found.group(1)


@click.command()
@click.option("--model", "ref", default=None, help="Registry alias or version to package [the serving alias].")
@click.option("--bentofile", type=click.Path(path_type=Path, dir_okay=False), default=None, help="[bentofile.yaml]")
@click.option("--bento-version", default=None, help="Version of the Bento tag [generated].")
def build(ref: str | None, bentofile: Path | None, bento_version: str | None) -> None:
    """Build a deployable Bento: service code, catalog, rules and the registry's champion model."""
    settings = settings_from()
    os.environ.setdefault("BENTOML_HOME", str(settings.home / "bentoml"))  # as `nextbest serve`; before import
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    from nextbest.serving.components import Components

    source = bentofile or settings.project_dir / "bentofile.yaml"
    if not source.is_file():
        raise ConfigError(f"bentofile {source} does not exist (use --bentofile)")
    config = yaml.safe_load(source.read_text()) or {}
    check_pins(config, settings.project_dir)
    policy = Components(settings, load_model=False).policy  # an invalid catalog or ruleset stops the build
    ref = ref or settings.serving.model_alias
    model, record = import_champion(settings, ref)
    check_model_catalog(Path(model.path) / POLICY_MODEL / "model.json", policy.catalog, record.version)
    console.print(
        f"model {settings.serving.model_name} v{record.version} (@{ref}) -> BentoML model {model.tag}", soft_wrap=True
    )
    config["models"] = [str(model.tag)]
    config["labels"] = {
        **(config.get("labels") or {}),
        "model_version": str(record.version),
        "ruleset_version": policy.ruleset.version,
        "catalog_version": policy.catalog.content_hash[:12],
    }
    manifest = {
        "model": {
            "bentoml_tag": str(model.tag),
            "path": POLICY_MODEL,
            "registry_name": settings.serving.model_name,
            "version": int(record.version),
            "ref": ref,
            "run_id": record.run_id,
        },
        "ruleset_version": policy.ruleset.version,
        "catalog_version": policy.catalog.content_hash,
        "built_at": time.time(),
    }
    with tempfile.TemporaryDirectory(prefix="nextbest-bento-") as tmp:
        staged = stage_context(settings, Path(tmp), config, manifest)
        tag = run_bentoml_build(Path(tmp), staged, bento_version)
    console.print(f"[green]built Bento {tag}[/] (store {os.environ['BENTOML_HOME']})", soft_wrap=True)
    console.print(f"  serve it:       bentoml serve {tag}")
    console.print(f"  container:      bentoml containerize {tag}")
