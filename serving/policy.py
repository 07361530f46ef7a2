"""Building the decision policy from the settings' rule and catalog files, and the checks :mod:`components` runs
before a swap: whether those files changed (``files_fingerprint``) and whether a policy's catalog fits the one a
model was trained with (``catalog_fit``, ``fits``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from nextbest.core.catalog import ActionCatalog, load_catalog
from nextbest.core.contract import CatalogDiff, compare_catalogs, model_catalog
from nextbest.core.decision import DecisionPolicy
from nextbest.core.exploration import Exploration
from nextbest.core.features import all_fields
from nextbest.core.rules import load_ruleset
from nextbest.core.rules.check import check
from nextbest.errors import ConfigError
from nextbest.serving.models import LoadedModel
from nextbest.settings import Settings


def files_fingerprint(paths: list[Path]) -> str:
    """A digest of the files' names and contents (a missing file counts too): it changes when any of them does."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode())
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


def build_policy(settings: Settings, catalog: ActionCatalog | None = None) -> DecisionPolicy:
    """The decision policy from the settings' rules, with ``catalog`` (default: the settings' catalog file);
    raises ``NextbestError`` for an invalid file or rules that do not fit the features or the catalog."""
    s = settings
    assert s.catalog_path is not None and s.rules_path is not None
    catalog = catalog if catalog is not None else load_catalog(s.catalog_path)
    ruleset = load_ruleset(s.rules_path, s.rule_params_path)
    check(ruleset, all_fields(), catalog).raise_for_errors()  # unknown features, type mismatches
    exploration = Exploration(
        rate=s.serving.exploration_rate,
        control_share=s.serving.control_group_share,
        control_salt=s.serving.control_group_salt,
        mode=s.serving.exploration_mode,
        temperature=s.serving.exploration_temperature,
        floor=s.serving.exploration_floor,
    )
    return DecisionPolicy(catalog, ruleset, exploration, fields=all_fields())


def catalog_fit(policy: DecisionPolicy, loaded: LoadedModel, label: str = "the live catalog") -> CatalogDiff | None:
    """How the policy's catalog differs from the one ``loaded`` was trained with; None when there is nothing to
    compare (no model, or a model from before models stored their catalog: it keeps working as it did)."""
    if loaded.model is None:
        return None
    try:
        trained = model_catalog(loaded.model.metadata)
    except ConfigError as exc:  # a stored catalog that does not validate: nothing the scores can be matched to
        return CatalogDiff(incompatible=(str(exc),))
    return None if trained is None else compare_catalogs(trained, policy.catalog, label)


def fits(policy: DecisionPolicy, loaded: LoadedModel | None) -> bool:
    """Whether ``loaded`` may be served with ``policy``: a model (None: no) whose catalog fits the policy's, or
    that stored none."""
    if loaded is None:
        return False
    diff = catalog_fit(policy, loaded)
    return diff is None or diff.compatible
