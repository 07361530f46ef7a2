"""A served model carries the catalog and the features it was trained with: the service refuses a model whose
catalog does not fit the live one (keeping the previous model, or serving the fallback that names the
difference), rejects a catalog reload the live model does not fit, takes a model and a catalog changed together
in one swap whichever arrives first, and reports model features the online features lack, in /ready and once in
the log."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from nextbest.serving.app import create_app
from nextbest.serving.components import Components
from nextbest.serving.models import load_model_ref
from nextbest.serving.runtime import build_runtime
from nextbest.settings import Settings, load_settings

PROJECT = Path(__file__).resolve().parents[3]


def _catalog(**changes: dict[str, Any]) -> dict[str, Any]:
    """catalog/actions.yaml with some actions' attributes changed, e.g. ``discount_10={"discount": 0.15}``."""
    raw = yaml.safe_load((PROJECT / "catalog" / "actions.yaml").read_text())
    for action in raw["actions"]:
        action.update(changes.get(action["id"], {}))
    return raw


def _model_dir(
    champion_dir: Path, target: Path, catalog: dict[str, Any] | None, version: str = "1", **encoder: str
) -> Path:
    """A copy of the session champion whose manifest says it was trained with ``catalog`` (None: a model from
    before models stored their catalog) and, optionally, with numeric features renamed (``age="age_years"``)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(champion_dir, target)
    manifest = json.loads((target / "model.json").read_text())
    if catalog is None:
        manifest["metadata"].pop("catalog", None)
    else:
        manifest["metadata"]["catalog"] = catalog
    manifest["encoder"]["numeric"] = [encoder.get(n, n) for n in manifest["encoder"]["numeric"]]
    manifest["metadata"]["version"] = version
    (target / "model.json").write_text(json.dumps(manifest))
    return target


@pytest.fixture(scope="module")
def champion_dir(settings: Settings, champion: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = load_model_ref(settings, "champion")
    assert model.metadata["catalog"]["control"] == "no_action"  # training stores the catalog with the model
    return model.save(tmp_path_factory.mktemp("champion") / "model")


@pytest.fixture
def live(settings: Settings, tmp_path: Path) -> dict[str, Any]:
    """Settings serving a model directory, with a catalog file of their own to edit."""
    catalog = tmp_path / "actions.yaml"
    catalog.write_text(yaml.safe_dump(_catalog()))
    own = load_settings(
        home=settings.home, data_dir=settings.data_dir, project_dir=settings.project_dir, catalog_path=catalog,
        decision_log_url=f"sqlite:///{tmp_path / 'decisions.db'}",
        serving={"model_dir": str(tmp_path / "model"), "reload_interval_s": 0, "exploration_rate": 0.0},
    )  # fmt: skip
    return {"settings": own, "catalog": catalog, "model": tmp_path / "model"}


def test_a_model_whose_catalog_does_not_fit_is_refused_and_the_fallback_names_why(
    live: dict[str, Any], champion_dir: Path
) -> None:
    _model_dir(champion_dir, live["model"], _catalog(discount_10={"discount": 0.15}))
    runtime = build_runtime(live["settings"])
    assert runtime.components.model.model is None
    app = create_app()
    app.state.runtime = runtime
    with TestClient(app) as client:
        d = client.post("/decide", json={"customer_id": 12, "channel": "email"}).json()
        ready = client.get("/ready").json()
    why = "discount_10 discount: 0.15 in the model's catalog, 0.1 in the live catalog"
    assert d["degraded"] and d["action"] == "no_action" and why in d["reason"] and "refused" in d["reason"]
    assert any(why in item for item in ready["degraded"]) and why in ready["details"]["model_refused"]
    assert ready["model_version"] is None


def test_a_refused_model_leaves_the_previous_one_serving(live: dict[str, Any], champion_dir: Path) -> None:
    _model_dir(champion_dir, live["model"], _catalog())
    runtime = build_runtime(live["settings"])
    assert runtime.components.model.version == "1"
    _model_dir(champion_dir, live["model"], _catalog(email_promo={"category": "service"}), version="2")
    swapped, error = runtime.components.reload_model(force=True)
    assert (
        not swapped
        and error is not None
        and "email_promo category: service in the model's catalog, promo in the live catalog" in error
    )
    assert runtime.components.model.version == "1" and runtime.components.model.model is not None
    ready = runtime.readiness()
    assert "email_promo category" in ready.details["model_refused"] and not ready.degraded
    app = create_app()
    app.state.runtime = runtime
    with TestClient(app) as client:
        assert not client.post("/decide", json={"customer_id": 12, "channel": "email"}).json()["degraded"]
    assert runtime.components.reload_model() == (False, error)  # asked again: the same answer, the same model
    assert runtime.readiness().model_version == "1"


def test_catalog_and_model_changed_together_go_live_together(live: dict[str, Any], champion_dir: Path) -> None:
    deeper = _catalog(discount_20={"discount": 0.25})
    _model_dir(champion_dir, live["model"], deeper)  # trained on the new catalog, arriving first: refused
    components = Components(live["settings"])
    assert components.model.model is None and "discount_20 discount: 0.25" in str(components.refused_model)
    live["catalog"].write_text(yaml.safe_dump(deeper))  # then the catalog: both go live in one swap
    assert components.reload_policy() == (True, None)
    assert components.model.model is not None and components.policy.catalog.by_id["discount_20"].discount == 0.25
    assert components.refused_model is None and components.snapshot().model is components.model

    deepest = _catalog(discount_20={"discount": 0.3})
    live["catalog"].write_text(yaml.safe_dump(deepest))  # the catalog first this time: rejected, kept waiting
    swapped, error = components.reload_policy()
    assert not swapped and error is not None and "does not fit the live model" in error
    assert "discount_20 discount: 0.25 in the model's catalog, 0.3 in the new catalog" in error
    assert components.policy.catalog.by_id["discount_20"].discount == 0.25 and components.policy_status.error
    _model_dir(champion_dir, live["model"], deepest, version="2")  # then the model trained on it
    assert components.reload_model(force=True) == (True, None)
    assert components.policy.catalog.by_id["discount_20"].discount == 0.3 and components.policy_status.error is None


def test_what_the_live_catalog_owns_is_tolerated_and_reported(live: dict[str, Any], champion_dir: Path) -> None:
    _model_dir(champion_dir, live["model"], _catalog(email_promo={"cost": 0.5}, push_nudge={"lever": 2.0}))
    components = Components(live["settings"])
    assert components.model.model is not None
    diff = components.catalog_diff
    assert diff is not None and diff.compatible
    assert diff.tolerated == (
        "email_promo cost: 0.5 in the model's catalog, 0.01 in the live catalog",
        "push_nudge lever: 2 in the model's catalog, 1 in the live catalog",
    )
    _model_dir(champion_dir, live["model"], None, version="2")  # a model from before models stored their catalog
    assert components.reload_model(force=True)[1] is None and components.model.model is not None
    assert components.catalog_diff is None


def test_model_features_the_online_features_lack_are_reported_once(
    live: dict[str, Any], champion_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _model_dir(champion_dir, live["model"], _catalog(), age="age_years", revenue_90d="spend_90d")
    with caplog.at_level(logging.WARNING, logger="nextbest.serving.components"):
        runtime = build_runtime(live["settings"])
        runtime.components.reload_model(force=True)  # the same model again: nothing new to say
    lines = [r.getMessage() for r in caplog.records if "missing from the online features" in r.getMessage()]
    assert len(lines) == 1 and "age_years, spend_90d" in lines[0], lines
    details = runtime.readiness().details
    assert details["feature_gap_details"]["model_features_missing"] == ["age_years", "spend_90d"]
    assert (
        "model features missing from the online features (feature service nba_v1) (scored as missing): "
        "age_years, spend_90d" in str(details["feature_gaps"])
    )
    assert details["feature_gap_details"]["rules"] == {}  # the feature service serves every rule's features


def test_the_models_feature_service_is_the_contract(
    live: dict[str, Any], champion_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader serves the feature service the model was trained on (its metadata, not a setting); a newer
    model trained on another one is refused, the previous keeps serving, and /ready names both services."""
    from nextbest.core.features import FEATURE_SERVICES

    monkeypatch.setitem(FEATURE_SERVICES, "nba_v2", FEATURE_SERVICES["nba_v1"])  # a second service to train on
    _model_dir(champion_dir, live["model"], _catalog())
    runtime = build_runtime(live["settings"])
    assert runtime.components.feature_service == "nba_v1" == runtime.backends.features.service_name
    assert runtime.readiness().feature_service == "nba_v1"

    target = _model_dir(champion_dir, live["model"], _catalog(), version="2")
    manifest = json.loads((target / "model.json").read_text())
    manifest["metadata"]["feature_service"] = "nba_v2"
    (target / "model.json").write_text(json.dumps(manifest))
    swapped, error = runtime.components.reload_model(force=True)
    both = "model 2 was trained on feature service nba_v2; the feature reader serves nba_v1"
    assert not swapped and error is not None and both in error
    assert runtime.components.model.version == "1"
    ready = runtime.readiness()
    assert any(both in item for item in ready.degraded) and ready.model_version == "1"
    app = create_app()
    app.state.runtime = runtime
    with TestClient(app) as client:
        body = client.post("/decide", json={"customer_id": 12, "channel": "email"}).json()
    assert not body["degraded"] and body["feature_service"] == "nba_v1" and body["model_version"] == "1"

    fresh = Components(live["settings"])  # started on the nba_v2 model: the reader serves nba_v2
    assert fresh.feature_service == "nba_v2" and fresh.model.version == "2" and fresh.feature_service_error is None
