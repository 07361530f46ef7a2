"""A model's catalog against a live one (what makes its scores wrong, what the live catalog may change), and the
guardrail rules that read customer features the data does not have."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nextbest.core.catalog import ActionCatalog, load_catalog
from nextbest.core.contract import compare_catalogs, model_catalog, rule_feature_gaps
from nextbest.core.features import all_fields
from nextbest.core.rules import load_ruleset
from nextbest.core.rules.engine import RuleEngine
from nextbest.errors import ConfigError

PROJECT = Path(__file__).resolve().parents[3]
HOLD = {
    "channels": ["email", "web"],
    "control": "hold",
    "actions": [
        {"id": "hold", "channels": ["email", "web"], "category": "none", "value": 0, "cost": 0},
        {"id": "offer_a", "channels": ["email"], "category": "promo", "value": 40, "cost": 0.5, "consent": "email"},
        {"id": "offer_b", "channels": ["web"], "category": "reminder", "value": 30, "cost": 0.1},
    ],
}


def hold(**changes: dict[str, Any]) -> ActionCatalog:
    raw = {**HOLD, "actions": [{**a, **changes.get(a["id"], {})} for a in HOLD["actions"]]}
    return ActionCatalog.model_validate(raw)


@pytest.fixture(scope="module")
def default() -> ActionCatalog:
    return load_catalog(PROJECT / "catalog" / "actions.yaml")


def test_the_same_catalog_agrees(default: ActionCatalog) -> None:
    diff = compare_catalogs(default, ActionCatalog.model_validate(default.model_dump(mode="json")))
    assert diff.same and diff.compatible and diff.describe() == ""
    renamed = hold().model_copy(update={"version": "2"})  # the version string and descriptions are not compared
    assert compare_catalogs(hold(), renamed).same


def test_another_control_and_actions_the_model_cannot_score_are_incompatible(default: ActionCatalog) -> None:
    diff = compare_catalogs(hold(), default, "catalog/actions.yaml")
    assert not diff.compatible
    assert diff.incompatible[0] == "control: 'hold' in the model's catalog, 'no_action' in catalog/actions.yaml"
    assert diff.incompatible[1].startswith("actions the model was not trained on (it cannot score them): no_action,")
    assert diff.tolerated == ("actions catalog/actions.yaml does not have (never offered): hold, offer_a, offer_b",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"offer_a": {"discount": 0.2}}, "offer_a discount: 0 in the model's catalog, 0.2 in the live catalog"),
        ({"offer_b": {"category": "promo"}}, "offer_b category: reminder in the model's catalog, promo in the live "
                                             "catalog"),
        ({"offer_a": {"consent": None}}, "offer_a consent: email in the model's catalog, none in the live catalog"),
    ],
)  # fmt: skip
def test_what_the_scores_depend_on_is_incompatible(change: dict[str, Any], message: str) -> None:
    diff = compare_catalogs(hold(), hold(**change))
    assert diff.incompatible == (message,) and diff.tolerated == ()


def test_what_the_live_catalog_owns_is_tolerated() -> None:
    live = hold(offer_a={"cost": 2.0, "lever": 1.5}, offer_b={"value": 35, "channels": ["web", "email"]})
    diff = compare_catalogs(hold(), live)
    assert diff.compatible and not diff.same
    assert diff.tolerated == (
        "offer_a cost: 0.5 in the model's catalog, 2 in the live catalog",
        "offer_a lever: 1 in the model's catalog, 1.5 in the live catalog",
        "offer_b value: 30 in the model's catalog, 35 in the live catalog",
        "offer_b channels: [web] in the model's catalog, [email, web] in the live catalog",
    )
    fewer = ActionCatalog.model_validate({**HOLD, "actions": HOLD["actions"][:2]})
    assert compare_catalogs(hold(), fewer).compatible  # a live catalog that stops offering offer_b


def test_the_currency_is_part_of_the_scores() -> None:
    assert not compare_catalogs(hold(), hold().model_copy(update={"currency": "USD"})).compatible


def test_a_model_catalog_round_trips_through_metadata() -> None:
    assert model_catalog({}) is None
    assert model_catalog({"catalog": hold().model_dump(mode="json")}) == hold()
    with pytest.raises(ConfigError, match="stored catalog is invalid"):
        model_catalog({"catalog": {"channels": ["email"], "control": "nope", "actions": []}})


def test_rules_reading_missing_customer_features_are_named(default: ActionCatalog) -> None:
    rules = load_ruleset(PROJECT / "rules" / "guardrails.yaml", PROJECT / "rules" / "params" / "default.yaml")
    engine = RuleEngine(rules, default, all_fields())
    assert not rule_feature_gaps(engine, all_fields())  # the feature service has everything the rules read
    gaps = rule_feature_gaps(engine, set(all_fields()) - {"email_opt_in", "open_tickets"}, ["age", "spend_90d"])
    assert dict(gaps.rules) == {"consent_email": ("email_opt_in",), "no_promo_open_ticket": ("open_tickets",)}
    assert gaps.actions["consent_email"] == ("email_promo", "discount_10", "discount_20")
    assert gaps.model == ("spend_90d",) and gaps.features == ("email_opt_in", "open_tickets")
    line = gaps.describe("the input")
    assert "2 rule(s) read customer features missing from the input: consent_email (email_opt_in), " in line
    assert "model features missing from the input (scored as missing): spend_90d" in line
    # Only rules that can apply to the catalog's actions: without SMS or push actions, their consent rules are moot.
    small = RuleEngine(rules, hold(), all_fields())
    moot = rule_feature_gaps(small, {"age"})
    assert set(moot.rules) == {"consent_email", "no_promo_open_ticket", "no_reminder_severe_ticket"}
    assert moot.actions["no_reminder_severe_ticket"] == ("offer_b",)


def test_the_models_feature_service(monkeypatch: pytest.MonkeyPatch) -> None:
    from nextbest.core.contract import feature_service_mismatch, model_feature_service
    from nextbest.core.features import FEATURE_SERVICES

    monkeypatch.setitem(FEATURE_SERVICES, "nba_v2", FEATURE_SERVICES["nba_v1"])
    assert model_feature_service({"feature_service": "nba_v1"}) == "nba_v1"
    assert model_feature_service({"feature_service": "nba_v2"}) == "nba_v2"
    for trained_on_a_file in ({}, {"feature_service": None}, {"feature_service": "None"}, {"feature_service": 3}):
        assert model_feature_service(trained_on_a_file) is None
        assert feature_service_mismatch(trained_on_a_file, "4", "nba_v1") is None  # scored on the served names
    assert feature_service_mismatch({"feature_service": "nba_v1"}, "4", "nba_v1") is None
    assert feature_service_mismatch({"feature_service": "nba_v2"}, "4", "nba_v1") == (
        "model 4 was trained on feature service nba_v2; the feature reader serves nba_v1 "
        "(restart the service to serve it)"
    )
