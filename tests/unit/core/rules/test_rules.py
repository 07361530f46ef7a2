"""Guardrail rules: loading and rejection, static checks, and the optimised evaluator against the naive one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.core.contact import HistoryBuilder
from nextbest.core.features import all_fields
from nextbest.core.rules import Ruleset, build_ruleset, load_ruleset
from nextbest.core.rules.batch import evaluate_batch
from nextbest.core.rules.check import check
from nextbest.core.rules.engine import RuleEngine
from nextbest.core.rules.syntax import inline, references, split_conjuncts
from nextbest.core.rules.values import RequestInfo, RuleEvaluation
from nextbest.errors import ConfigError

PROJECT = Path(__file__).resolve().parents[4]
RULES = PROJECT / "rules" / "guardrails.yaml"
DEFAULT_PARAMS = PROJECT / "rules" / "params" / "default.yaml"
NOW = int(datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp())


def rule(rule_id: str = "r", when: str = "action.category == 'promo'", **extra: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "description": "d",
        "owner": "o@example.com",
        "when": when,
        "effect": "suppress",
        "message": f"{rule_id} fired",
        **extra,
    }


def ruleset(*rules: dict[str, Any], params: dict[str, Any] | None = None) -> Ruleset:
    return build_ruleset({"version": "t", "rules": list(rules)}, params or {}, source="test.yaml")


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    return load_ruleset(RULES, DEFAULT_PARAMS)


def keyed(ev: RuleEvaluation) -> tuple[object, ...]:
    """What must agree between evaluators (error texts may come from different conjuncts)."""
    hits = sorted((h.rule_id, h.action_id, h.mode, h.error is None) for h in ev.hits)
    skipped = sorted((h.rule_id, h.action_id) for h in ev.skipped)
    return ev.suppressed.tolist(), np.round(ev.lever, 12).tolist(), hits, skipped


# Loading ------------------------------------------------------------------------------------------------------
def test_shipped_rules_load_with_every_params_file(shipped: Ruleset) -> None:
    production = load_ruleset(RULES, PROJECT / "rules" / "params" / "production.yaml")
    assert shipped.rule_count == 18 and shipped.count("shadow") == 1
    assert len(shipped.version) == 12 and shipped.version != production.version
    assert load_ruleset(RULES, DEFAULT_PARAMS).version == shipped.version  # content hash, stable
    assert shipped.by_id["email_cap_7d"].conjuncts[-1].source == "history . channel_7d . email >= 3"  # inlined


def test_version_changes_with_any_rule_content() -> None:
    a = ruleset(rule())
    b = ruleset(rule(message="changed"))
    assert a.version != b.version and a.version == ruleset(rule()).version


TEMPLATE = """version: t
rules:
  - id: first
    description: Promotions off.
    owner: o@example.com
    when: "action.category == 'promo'"
    effect: suppress
    message: m
  - id: {id}
    description: Second rule.
    owner: o@example.com
    when: {when}
    effect: {effect}
    message: m
"""
BAD_FILES = [
    ("yaml syntax", {"when": '"customer.age > 3\n    mode: [unclosed'}, "rule second: not valid YAML: line"),
    ("unknown field", {"effect": "suppress\n    whenn: x"}, "rule second: unknown field 'whenn'"),
    ("bad CEL", {"when": '"customer.age >"'}, "rule second: when: invalid CEL"),
    ("unknown variable", {"when": '"custmer.age > 3"'}, "rule second: when: unknown variable 'custmer'"),
    ("unknown param", {"when": '"params.nope > 1"'}, "rule second: when: unknown parameter params.nope"),
    ("unknown action field", {"when": "\"action.colour == 'red'\""}, "rule second: when: unknown field action.colour"),
    ("unknown history field", {"when": '"history.visits > 1"'}, "rule second: when: unknown field history.visits"),
    ("bad effect", {"effect": "{levr: 2}"}, "rule second: effect: expected 'suppress'"),
    ("bad mode", {"effect": "suppress\n    mode: maybe"}, "rule second: mode: Input should be"),
    ("bad id", {"id": "Second-Rule"}, "rule Second-Rule: id: must be lower_snake_case"),
    ("duplicate id", {"id": "first"}, "rule first: duplicate rule id"),
    ("shadowed name", {"when": '"[1].exists(customer, customer > 0)"'}, "rule second: when: 'customer' is reserved"),
    # Nothing a file holds escapes as anything but a one-line rejection (issue 14).
    ("impossible date", {"effect": "suppress\n    valid_from: 2026-02-30"}, "not valid YAML: day is out of range"),
    ("deep yaml", {"effect": "suppress\n    x: " + "[" * 3000 + "]" * 3000}, "not valid YAML: nested too deeply"),
    ("infinite lever", {"effect": "{lever: .inf}"}, "rule second: effect:"),
    ("deep expression", {"when": '"' + "(" * 40 + "true" + ")" * 40 + '"'}, "rule second: when: nested 40 deep"),
    (
        "nested comprehensions",
        {"when": '"[1].all(x, [2].all(y, [3].exists(z, z > x)))"'},
        "rule second: when: comprehensions (all, exists, map, filter) nested 3 deep",
    ),
    (
        "long expression",
        {"when": '"' + " || ".join(["true"] * 900) + '"'},
        "rule second: when: String should have at most",
    ),
]


@pytest.mark.parametrize(("kind", "fields", "expected"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_every_bad_file_kind_names_file_rule_and_problem(
    tmp_path: Path, kind: str, fields: dict[str, str], expected: str
) -> None:
    path = tmp_path / "guardrails.yaml"
    path.write_text(TEMPLATE.format(**{"id": "second", "when": "'true'", "effect": "suppress", **fields}))
    with pytest.raises(ConfigError) as err:
        load_ruleset(path, None)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_bad_params_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("params:\n  cap: {nested: 1}\n")
    with pytest.raises(ConfigError, match=rf"{bad}: params.cap"):
        load_ruleset(RULES, bad)
    bad.write_text("params: {email_max_7d: 1}\n")  # missing parameters the rules use
    with pytest.raises(ConfigError, match=r"rule no_reminder_severe_ticket: when: unknown parameter"):
        load_ruleset(RULES, bad)


def test_check_reports_unknown_features_and_type_mismatches(catalog: ActionCatalog, shipped: Ruleset) -> None:
    assert check(shipped, all_fields(), catalog, now=NOW).ok
    bad = ruleset(
        rule("typo", "customer.open_ticket > 0"),
        rule("compare", "customer.tier > 3 && action.category == 'promo'"),
        rule("never_equal", "customer.app_user == true"),
        rule("fine", "has(customer.tier) && customer.tier == 'gold'"),
        params={"unused": 1},
    )
    report = check(bad, all_fields(), catalog, now=NOW)
    errors = [str(i) for i in report.errors]
    assert (
        errors[0] == "test.yaml: rule typo: unknown feature customer.open_ticket; did you mean customer.open_tickets?"
    )
    assert errors[1].startswith("test.yaml: rule compare: type mismatch in `customer.tier > 3`")
    assert "customer.tier is string" in errors[1]
    assert errors[2].startswith("test.yaml: rule never_equal: type mismatch") and "int with bool" in errors[2]
    assert len(errors) == 3 and "parameter unused is not used" in str(report.warnings[0])
    with pytest.raises(ConfigError, match="rule typo: unknown feature"):
        report.raise_for_errors()


def test_check_warns_about_rules_that_never_fire_and_actions_nobody_gets(catalog: ActionCatalog) -> None:
    rs = ruleset(
        rule("never", "has(customer.age) && customer.age > 500"),
        rule("no_email", "action.consent == 'email' && customer.email_opt_in == 0"),
        rule("later", "true", valid_from="2030-01-01"),
    )
    samples = [{"age": 30 + i, "email_opt_in": 0, "app_user": i % 2} for i in range(20)]
    warnings = [str(w) for w in check(rs, all_fields(), catalog, samples, now=NOW).warnings]
    assert "test.yaml: rule never: never fires on the 20 sample customers" in warnings
    assert "test.yaml: rule later: not active now (outside its validity dates)" in warnings
    assert any(
        w.startswith("test.yaml: action email_promo is suppressed for every one") and "no_email" in w for w in warnings
    )
    assert not any("push_nudge" in w or "rule no_email" in w for w in warnings)


# Syntax helpers -----------------------------------------------------------------------------------------------
def test_splitting_and_references_respect_strings_parentheses_and_precedence() -> None:
    src = "action.id == 'a && b' && (customer['tier'] == 'gold' && has(customer.age)) && request.hour > 3"
    assert split_conjuncts(src) == [
        "action.id == 'a && b'",
        "customer['tier'] == 'gold'",
        "has(customer.age)",
        "request.hour > 3",
    ]
    assert split_conjuncts("a && b || c") == ["a && b || c"]
    assert split_conjuncts("a && b ? c : d") == ["a && b ? c : d"]
    refs = references("customer['tier'] == 'x' && action.channels.exists(c, history.channel_7d[c] > 1) && 'customer.y'")
    assert refs.fields["customer"] == {"tier"} and refs.bound == {"c"} and "customer" not in refs.dynamic
    assert references("customer[action.consent] == 1").dynamic == {"customer"}
    assert inline("params.a > 1 && 'params.a' != '' && has(params.b)", "params", {"a": 2.5}) == (
        "2.5 > 1 && 'params.a' != '' && false"
    )


# Evaluation ---------------------------------------------------------------------------------------------------
def test_shadow_rules_are_reported_and_change_nothing(catalog: ActionCatalog) -> None:
    enforce = RuleEngine(ruleset(rule("promo_off")), catalog)
    shadow = RuleEngine(ruleset(rule("promo_off", mode="shadow")), catalog)
    request = RequestInfo("any", NOW)
    applied = enforce.evaluate(catalog.ids, {"app_user": 1}, request, {})
    reported = shadow.evaluate(catalog.ids, {"app_user": 1}, request, {})
    promos = [a.id for a in catalog.actions if a.category == "promo"]
    assert [catalog.ids[k] for k in np.flatnonzero(applied.suppressed)] == promos
    assert not reported.suppressed.any() and (reported.lever == 1.0).all()
    assert [(h.action_id, h.mode) for h in reported.hits] == [(a, "shadow") for a in promos]


def test_validity_dates_are_whole_utc_days_inclusive(catalog: ActionCatalog) -> None:
    engine = RuleEngine(ruleset(rule(valid_from="2026-11-27", valid_until="2026-11-30")), catalog)
    start = int(datetime(2026, 11, 27, tzinfo=UTC).timestamp())
    end = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())
    fired = {
        t: engine.evaluate(catalog.ids, {"app_user": 1}, RequestInfo("any", t), {}).suppressed.any()
        for t in (start - 1, start, end - 1, end)
    }
    assert fired == {start - 1: False, start: True, end - 1: True, end: False}


def test_on_error_fires_suppressions_and_skips_levers_by_default(catalog: ActionCatalog) -> None:
    rs = ruleset(
        rule("unsafe_suppress", "action.category == 'promo' && customer.orders_30d > 1"),
        rule("unsafe_skip", "action.category == 'promo' && customer.orders_30d > 1", on_error="skip"),
        rule("unsafe_lever", "action.category == 'service' && customer.aov_180d > 50.0", effect={"lever": 2.0}),
        rule("healthy", "action.id == 'help_content' && has(customer.tier)", effect={"lever": 0.5}),
    )
    ev = RuleEngine(rs, catalog).evaluate(catalog.ids, {"tier": "gold"}, RequestInfo("any", NOW), {})
    promo = catalog.ids.index("email_promo")
    help_ = catalog.ids.index("help_content")
    assert ev.suppressed[promo] and ev.lever[help_] == 0.5  # the broken rules did not disturb the healthy one
    fired = {(h.rule_id, h.action_id): h.error for h in ev.hits}
    assert "orders_30d" in str(fired[("unsafe_suppress", "email_promo")])
    assert fired[("healthy", "help_content")] is None
    assert {(h.rule_id, h.action_id) for h in ev.skipped} >= {
        ("unsafe_skip", "email_promo"),
        ("unsafe_lever", "help_content"),
    }
    assert all(h.rule_id != "unsafe_skip" for h in ev.hits)


def test_catalog_eligibility_is_enforced_and_fails_safe(catalog: ActionCatalog) -> None:
    engine = RuleEngine(ruleset(), catalog)
    push = catalog.ids.index("push_nudge")
    for features, suppressed in (({"app_user": 1}, False), ({"app_user": 0}, True), ({}, True)):
        ev = engine.evaluate(catalog.ids, features, RequestInfo("any", NOW), {})
        assert bool(ev.suppressed[push]) is suppressed
    assert ev.hits[0].rule_id == "eligibility:push_nudge" and ev.hits[0].error is not None


TRICKY = [
    rule("no_has", "action.category == 'promo' && customer.orders_30d > 1"),
    rule("no_has_skip", "action.category == 'promo' && customer.orders_30d > 2", on_error="skip"),
    rule("lever_err", "customer.aov_180d > 50.0 && 'discount' in action.tags", effect={"lever": 1.1}),
    rule("non_bool", "action.category == 'service' && customer.age"),
    rule("static_err", "action.value > 'x' && has(customer.age) && customer.age > 40"),
    rule(
        "either", "action.id == 'help_content' || has(customer.tier) && customer.tier == 'gold'", effect={"lever": 0.8}
    ),
    rule("ternary", "has(customer.tier) ? customer.tier == 'bronze' && action.discount > 0.0 : false"),
    rule("dynamic_customer", "action.consent != '' && customer[action.consent + '_opt_in'] == 0"),
    rule("dynamic_history", "history['contacts_' + '7d'] > 2 && action.category == 'promo'", mode="shadow"),
    rule(
        "context",
        "has(request.context.segment) && request.context.segment == 'vip' && action.value > 10.0",
        effect={"lever": 1.3},
    ),
    rule("commented", "action.category == 'promo' // promotions only\n && customer.open_tickets > 0"),
    rule("dated", "action.category == 'reminder'", valid_from="2026-11-21", valid_until="2026-11-23"),
    rule("param_list", "size(params) > 0 && action.id in params.first_purchase_offers && request.hour < 12"),
    rule("cooldown", "action.id in history.days_since_action && history.days_since_action[action.id] < 3.5"),
    rule("streak", "action.consent != '' && history.ignored_streak[action.consent] >= 2"),
    rule("caps", "history.channel_7d.email + history.channel_30d['sms'] >= 3 && action.cost > 0.005"),
]


def random_customer(rng: np.random.Generator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in all_fields().items():
        draw = rng.random()
        if draw < 0.3:
            out[name] = None
        elif draw < 0.33:
            out[name] = "not a number" if spec.dtype != "string" else 7  # unconvertible or coerced
        elif spec.dtype == "int64":
            out[name] = int(rng.integers(0, 4))
        elif spec.dtype == "float64":
            out[name] = float("nan") if draw < 0.36 else float(rng.uniform(0, 100))
        else:
            out[name] = str(rng.choice(["gold", "silver", "bronze", "north"]))
    return out


def random_history(rng: np.random.Generator, catalog: ActionCatalog, now: int) -> dict[str, object]:
    rows = [
        (
            now - int(rng.integers(0, 20 * 86_400)),
            str(rng.choice(catalog.ids)),
            str(rng.choice(["email", "sms", "push"])),
            str(rng.choice(["sent", "sent", "click", "ignored", "impression"])),
        )
        for _ in range(int(rng.integers(0, 10)))
    ]
    return HistoryBuilder(catalog.channels, catalog.control).build(rows, now)


def test_optimised_evaluation_equals_naive_on_random_inputs(catalog: ActionCatalog, shipped: Ruleset) -> None:
    rs = build_ruleset(
        {"version": "t", "rules": [*(s.model_dump(mode="json", exclude_none=True) for s in shipped.specs), *TRICKY]},
        dict(shipped.params),
        source="test.yaml",
    )
    engine = RuleEngine(rs, catalog)
    rng = np.random.default_rng(42)
    seen_errors = seen_hits = 0
    for i in range(250):
        now = NOW + int(rng.integers(-3 * 86_400, 3 * 86_400))
        channel = str(rng.choice([*catalog.channels, "any"]))
        cands = catalog.for_channel(channel)
        if i % 3 == 0:
            cands = tuple(a for a in cands if rng.random() < 0.6 or a == catalog.control)
        context = {"segment": "vip"} if rng.random() < 0.3 else {}
        request = RequestInfo(channel, now, context)
        features, history = random_customer(rng), random_history(rng, catalog, now)
        fast = engine.evaluate(cands, features, request, history)
        slow = engine.evaluate_naive(cands, features, request, history)
        assert keyed(fast) == keyed(slow), f"case {i}: {request}, {features}"
        seen_errors += sum(h.error is not None for h in fast.hits) + len(fast.skipped)
        seen_hits += len(fast.hits)
    assert seen_errors > 50 and seen_hits > 500  # the random inputs exercised both paths


def test_batch_evaluation_equals_single_evaluation(catalog: ActionCatalog, shipped: Ruleset) -> None:
    rs = build_ruleset(
        {"version": "t", "rules": [*(s.model_dump(mode="json", exclude_none=True) for s in shipped.specs), *TRICKY]},
        dict(shipped.params),
        source="test.yaml",
    )
    engine = RuleEngine(rs, catalog)
    rng = np.random.default_rng(7)
    customers = [random_customer(rng) for _ in range(120)]
    columns = {name: [c[name] for c in customers] for name in all_fields()}
    columns["hours_since_cart_abandoned"] = np.array(
        [np.nan if not isinstance(v, float) else v for v in columns["hours_since_cart_abandoned"]]
    )
    request = RequestInfo("any", NOW, {"segment": "vip"})
    for histories in (None, [random_history(rng, catalog, NOW) for _ in customers]):
        batch = evaluate_batch(engine, catalog.ids, columns, request, histories)
        for i, customer in enumerate(customers):
            customer = {**customer, "hours_since_cart_abandoned": columns["hours_since_cart_abandoned"][i]}
            history = histories[i] if histories is not None else HistoryBuilder(catalog.channels).empty()
            assert keyed(batch.row(i)) == keyed(engine.evaluate(catalog.ids, customer, request, history)), i
