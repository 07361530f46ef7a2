"""The deployable Bento: `nextbest build` packages the service code, catalog, rules and the registry's champion,
and `bentoml serve <tag>` serves non-degraded decisions with the MLflow server down (never contacted)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from nextbest.cli.walkthrough import stop_service, wait_ready
from nextbest.settings import Settings
from tests.support.servers import free_port

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[3]
BENTO = "nextbest-service"


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without nextbest/BentoML/MLflow settings of the caller, plus ``extra``."""
    prefixes = ("NEXTBEST_", "BENTOML_", "MLFLOW_")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(prefixes)},
        "BENTOML_DO_NOT_TRACK": "true",
        **extra,
    }


def bentoml(home: Path, *args: str) -> Any:
    cmd = [str(Path(sys.executable).with_name("bentoml")), *args, "-o", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(BENTOML_HOME=str(home)), timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def bento(settings: Settings, champion: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A Bento built from the session home, whose MLflow store holds the trained champion."""
    home = tmp_path_factory.mktemp("bentoml")
    version = f"t{uuid.uuid4().hex[:8]}"
    env = clean_env(
        NEXTBEST_HOME=str(settings.home),
        NEXTBEST_DATA_DIR=str(settings.data_dir),
        NEXTBEST_PROJECT_DIR=str(PROJECT),
        BENTOML_HOME=str(home),
    )
    cmd = [sys.executable, "-m", "nextbest.cli", "build", "--bento-version", version]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=home, timeout=180)
    assert done.returncode == 0, f"nextbest build failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    tag = f"{BENTO}:{version}"
    assert tag in done.stdout
    return {"home": home, "tag": tag, "path": home / "bentos" / BENTO / version}


def test_bento_holds_code_catalog_rules_and_the_champion(bento: dict[str, Any], champion: Any) -> None:
    src = bento["path"] / "src"
    assert (src / "nextbest" / "serving" / "service.py").read_text() == (PROJECT / "serving/service.py").read_text()
    assert (src / "nextbest" / "features" / "online.py").is_file()  # stage folders in the installed layout
    assert (src / "features" / "feature_store.yaml").is_file() and (src / "features/environments/redis.yaml").is_file()
    for relative in ("catalog/actions.yaml", "rules/guardrails.yaml", "rules/params/default.yaml"):
        assert (src / relative).read_bytes() == (PROJECT / relative).read_bytes()
    manifest = json.loads((src / "nextbest-bento.json").read_text())
    assert manifest["model"]["version"] == champion.version and manifest["model"]["ref"] == "champion"

    listed = {b["tag"] for b in bentoml(bento["home"], "list")}
    assert bento["tag"] in listed
    info = bentoml(bento["home"], "get", bento["tag"])
    assert [m["tag"] for m in info["models"]] == [manifest["model"]["bentoml_tag"]]
    assert info["labels"]["model_version"] == str(champion.version)

    name, _, model_version = manifest["model"]["bentoml_tag"].partition(":")
    model_dir = bento["home"] / "models" / name / model_version
    assert (model_dir / "mlflow_model" / "MLmodel").is_file()  # the MLflow model, as registered
    policy = json.loads((model_dir / manifest["model"]["path"] / "model.json").read_text())
    assert policy["metadata"]["version"] == champion.version  # stamped: decisions report the registry version
    model_info = yaml.safe_load((model_dir / "model.yaml").read_text())
    assert model_info["labels"]["mlflow_version"] == str(champion.version)

    requirements = (bento["path"] / "env" / "python" / "requirements.txt").read_text().split()
    pinned = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(pinned) <= set(requirements)


@pytest.fixture(scope="module")
def served(bento: dict[str, Any], settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``bentoml serve <tag>`` with the MLflow tracking server down: the model must come from the Bento."""
    run = tmp_path_factory.mktemp("bento-serve")
    port = free_port()
    dead = socket.socket()  # bound, never listening: connections are refused for as long as the test runs
    dead.bind(("127.0.0.1", 0))
    dead_mlflow = dead.getsockname()[1]
    env = clean_env(
        BENTOML_HOME=str(bento["home"]),
        NEXTBEST_HOME=str(settings.home),  # the Feast registry and online store of the session world
        NEXTBEST_MLFLOW_TRACKING_URI=f"http://127.0.0.1:{dead_mlflow}",  # nothing listens there
        NEXTBEST_DECISION_LOG_URL=f"sqlite:///{run / 'decisions.db'}",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",  # a registry call would fail fast, not hang
        MLFLOW_HTTP_REQUEST_TIMEOUT="2",
        PYTHONOPTIMIZE="1",
    )
    cmd = [str(Path(sys.executable).with_name("bentoml")), "serve", bento["tag"], "--port", str(port)]
    cmd += ["--host", "127.0.0.1"]
    log = run / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=run, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, timeout=120)
        yield base
    except Exception:
        raise AssertionError(f"the Bento did not start:\n{log.read_text()[-3000:]}") from None
    finally:
        stop_service(process)
        dead.close()


def test_bento_serves_decisions_without_the_registry(served: str, bento: dict[str, Any], champion: Any) -> None:
    ready = httpx.get(f"{served}/ready", timeout=10).json()
    assert ready["degraded"] == [], ready
    assert ready["model_version"] == str(champion.version)
    assert ready["details"]["model_source"].startswith(str(bento["home"] / "models"))
    manifest = json.loads((bento["path"] / "src" / "nextbest-bento.json").read_text())
    assert ready["ruleset_version"] == manifest["ruleset_version"]

    decisions = [
        httpx.post(f"{served}/decide", json={"customer_id": c, "channel": "any"}, timeout=10).json()
        for c in range(1, 11)
    ]
    served_ok = [d for d in decisions if not d["degraded"]]
    assert served_ok, [d["reason"] for d in decisions]
    assert {d["model_version"] for d in served_ok} == {str(champion.version)}
    assert all(d["candidates"] for d in served_ok)


def test_bentofile_pins_are_the_project_dependencies() -> None:
    bentofile = yaml.safe_load((PROJECT / "bentofile.yaml").read_text())
    pinned = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert sorted(bentofile["python"]["packages"]) == sorted(pinned)
    assert all("==" in p for p in pinned)
