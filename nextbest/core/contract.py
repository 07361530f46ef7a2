"""What a model was trained with against what it is asked to decide with: the action catalog, and the customer
features the guardrail rules read.

A trained model stores its catalog (``metadata["catalog"]``) and its feature list (its encoder). Its scores,
P(convert) and expected revenue per action, are only meaningful for the actions as they were trained: the same
ids, control, currency, discount (the value head and the action descriptors embed it), category and consent
(descriptors). Those differences make a catalog **incompatible**: deciding with it would pair scores with the
wrong actions. What the live catalog owns and arbitration reads from it at decision time (cost, lever, value,
channels) and actions the live catalog no longer offers are **tolerated**: decisions use the live values, and
the difference is reported. Descriptions, tags, the catalog's version string and eligibility conditions (rules)
are not compared.

Rules read ``customer.<feature>`` through ``has()`` guards, so a feature the data does not provide at all turns
a guard into a constant: ``!(has(customer.email_opt_in) && ...)`` suppresses every email action for everyone,
``has(customer.open_tickets) && ...`` never fires. :func:`rule_feature_gaps` names those rules and features so
the caller can report them once instead of deciding silently on a constant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from nextbest.core.catalog import Action, ActionCatalog
from nextbest.core.features import FEATURE_SERVICES
from nextbest.core.rules.engine import RuleEngine
from nextbest.errors import ConfigError

#: Action attributes the model's scores depend on (a difference is incompatible) and those it does not.
SCORED_ATTRIBUTES = ("discount", "category", "consent")
LIVE_ATTRIBUTES = ("cost", "lever", "value", "channels")


@dataclass(frozen=True)
class CatalogDiff:
    """Differences between a model's catalog and another, as readable messages (empty when they agree)."""

    incompatible: tuple[str, ...] = ()
    tolerated: tuple[str, ...] = ()

    @property
    def compatible(self) -> bool:
        return not self.incompatible

    @property
    def same(self) -> bool:
        return not self.incompatible and not self.tolerated

    def describe(self, limit: int = 8) -> str:
        """One line: the incompatible differences first, then the tolerated ones."""
        items = [*self.incompatible, *self.tolerated]
        more = f"; and {len(items) - limit} more" if len(items) > limit else ""
        return "; ".join(items[:limit]) + more


def model_feature_service(metadata: Mapping[str, Any]) -> str | None:
    """The feature service a model was trained on (``metadata["feature_service"]``) when it is one this project
    serves; None for a model trained on a file (``nextbest train --data``) or on an unknown service."""
    name = metadata.get("feature_service")
    return name if isinstance(name, str) and name in FEATURE_SERVICES else None


def feature_service_mismatch(metadata: Mapping[str, Any], version: str | None, served: str) -> str | None:
    """Why a model cannot be served by a feature reader serving ``served`` (None: it can). A model trained on a
    file names no service: it is scored on the served features of the same names (the rule and model feature
    gaps say which are missing)."""
    trained = model_feature_service(metadata)
    if trained is None or trained == served:
        return None
    return (
        f"model {version} was trained on feature service {trained}; the feature reader serves {served} "
        "(restart the service to serve it)"
    )


def model_catalog(metadata: Mapping[str, Any]) -> ActionCatalog | None:
    """The catalog a model was trained with (None for models trained before models stored it)."""
    raw = metadata.get("catalog")
    if raw is None:
        return None
    try:
        return ActionCatalog.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "catalog"
        raise ConfigError(f"the model's stored catalog is invalid: {where}: {first['msg']}") from exc


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def _ids(ids: Iterable[str]) -> str:
    return ", ".join(ids)


def compare_catalogs(trained: ActionCatalog, live: ActionCatalog, label: str = "the live catalog") -> CatalogDiff:
    """How ``live`` differs from the catalog the model was ``trained`` with, in decision-relevant terms."""
    incompatible: list[str] = []
    tolerated: list[str] = []
    if trained.control != live.control:
        incompatible.append(f"control: {trained.control!r} in the model's catalog, {live.control!r} in {label}")
    if trained.currency != live.currency:
        incompatible.append(f"currency: {trained.currency} in the model's catalog, {live.currency} in {label}")
    added = [a for a in live.ids if a not in trained.by_id]
    removed = [a for a in trained.ids if a not in live.by_id]
    if added:
        incompatible.append(f"actions the model was not trained on (it cannot score them): {_ids(added)}")
    if removed:
        tolerated.append(f"actions {label} does not have (never offered): {_ids(removed)}")
    for action in live.actions:
        old = trained.by_id.get(action.id)
        if old is None:
            continue
        for name in SCORED_ATTRIBUTES:
            _differ(old, action, name, label, incompatible)
        for name in LIVE_ATTRIBUTES:
            _differ(old, action, name, label, tolerated)
    return CatalogDiff(tuple(incompatible), tuple(tolerated))


def _differ(old: Action, new: Action, name: str, label: str, out: list[str]) -> None:
    a, b = getattr(old, name), getattr(new, name)
    if name == "channels":
        a, b = tuple(sorted(a)), tuple(sorted(b))
    if a != b:
        out.append(f"{new.id} {name}: {_show(a)} in the model's catalog, {_show(b)} in {label}")


@dataclass(frozen=True)
class FeatureGaps:
    """Rules that read customer features the data lacks, and model features the data lacks."""

    rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # rule id -> missing features it reads
    actions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # rule id -> actions it can apply to
    model: tuple[str, ...] = ()  # model features the data lacks (scored as missing)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(sorted({f for names in self.rules.values() for f in names}))

    def __bool__(self) -> bool:
        return bool(self.rules or self.model)

    def describe(self, data: str = "the data") -> str:
        """One line naming every rule and missing feature ('' when nothing is missing)."""
        parts = []
        if self.rules:
            rules = ", ".join(f"{r} ({', '.join(f)})" for r, f in self.rules.items())
            parts.append(
                f"{len(self.rules)} rule(s) read customer features missing from {data}: {rules}; has() is false for "
                f"them, so these rules act on every customer as if the value were absent (missing: "
                f"{', '.join(self.features)})"
            )
        if self.model:
            parts.append(f"model features missing from {data} (scored as missing): {', '.join(self.model)}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rules": {r: list(f) for r, f in self.rules.items()},
            "rule_actions": {r: list(a) for r, a in self.actions.items()},
            "missing_features": list(self.features),
            "model_features_missing": list(self.model),
        }


def rule_feature_gaps(engine: RuleEngine, available: Iterable[str], model_features: Iterable[str] = ()) -> FeatureGaps:
    """Rules of ``engine`` (its ruleset and the catalog's eligibility conditions, ``off`` rules excluded) that
    read ``customer.<feature>`` not in ``available``, counting only rules that can apply to some catalog action
    (a consent rule for SMS does not matter to a catalog without SMS actions); and ``model_features`` not in
    ``available``."""
    have = set(available)
    rules: dict[str, tuple[str, ...]] = {}
    actions: dict[str, tuple[str, ...]] = {}
    for i, rule in enumerate(engine.rules):
        missing = tuple(sorted(rule.refs.fields["customer"] - have))
        applies = engine.applicable_actions(i)
        if missing and applies:
            rules[rule.id] = missing
            actions[rule.id] = applies
    return FeatureGaps(rules, actions, tuple(f for f in model_features if f not in have))
