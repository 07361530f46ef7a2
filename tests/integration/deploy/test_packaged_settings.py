"""Inside a Bento the service defaults to what `nextbest build` packaged; explicit settings still win, and
outside a Bento nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nextbest.serving.service import BENTO_MANIFEST, packaged_settings
from nextbest.settings import load_settings

PROJECT = Path(__file__).resolve().parents[3]
MANIFEST = {
    "model": {"bentoml_tag": "nextbest-uplift:missing", "path": "mlflow_model/artifacts/policy_model"},
    "catalog_path": "catalog/actions.yaml",
    "rules_path": "rules/guardrails.yaml",
    "rule_params_path": "rules/params/production.yaml",
}


@pytest.fixture
def bento_src(tmp_path: Path) -> Path:
    (tmp_path / BENTO_MANIFEST).write_text(json.dumps(MANIFEST))
    return tmp_path


def test_outside_a_bento_nothing_changes(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, project_dir=PROJECT)
    assert packaged_settings(settings) is settings


def test_packaged_files_are_defaults_and_explicit_settings_win(bento_src: Path, tmp_path: Path) -> None:
    own_rules = tmp_path / "mine.yaml"
    model_dir = tmp_path / "model"
    settings = load_settings(
        home=tmp_path, project_dir=bento_src, rules_path=own_rules, serving={"model_dir": str(model_dir)}
    )
    packaged = packaged_settings(settings)
    assert packaged.catalog_path == bento_src / "catalog/actions.yaml"
    assert packaged.rule_params_path == bento_src / "rules/params/production.yaml"
    assert packaged.rules_path == own_rules.resolve()
    assert packaged.serving.model_dir == model_dir.resolve()  # never looked up in the BentoML store


def test_an_explicit_alias_follows_the_registry_instead_of_the_packaged_model(bento_src: Path, tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path, project_dir=bento_src, serving={"model_alias": "champion"})
    packaged = packaged_settings(settings)
    assert packaged.serving.model_dir is None and packaged.serving.model_alias == "champion"
    assert packaged.rules_path == bento_src / "rules/guardrails.yaml"
