"""Assembling decisions: candidates, guardrails, arbitration, exploration, fallback, batch = single."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.core.decision import DecisionPolicy, DecisionRequest
from nextbest.core.decision_batch import decide_batch
from nextbest.core.exploration import Exploration, in_control_group
from nextbest.core.rules import Ruleset, build_ruleset, load_ruleset
from nextbest.errors import ConfigError, DataError

PROJECT = Path(__file__).resolve().parents[3]
NOW = int(datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp())
GREEDY = Exploration(rate=0.0, control_share=0.0)
HAPPY = {
    "email_opt_in": 1,
    "sms_opt_in": 1,
    "push_opt_in": 1,
    "app_user": 1,
    "open_tickets": 0,
    "max_open_severity": 0,
    "orders_180d": 0,
    "tier": "silver",
    "cart_open": 1,
    "hours_since_cart_abandoned": 100.0,
}


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    return load_ruleset(PROJECT / "rules" / "guardrails.yaml", PROJECT / "rules" / "params" / "default.yaml")


@pytest.fixture(scope="module")
def policy(catalog: ActionCatalog, shipped: Ruleset) -> DecisionPolicy:
    return DecisionPolicy(catalog, shipped, GREEDY)


def scores(policy: DecisionPolicy, cands: tuple[str, ...], p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """P(convert) per candidate (0.10 unless given) and revenue at 60 per order after any discount."""
    probs = np.array([p.get(a, 0.10) for a in cands])
    value = np.array([60.0 * (1 - policy.catalog.by_id[a].discount) for a in cands])
    return probs, probs * value


def decide(policy: DecisionPolicy, features: dict[str, Any], p: dict[str, float], channel: str = "email", **kw: Any):  # type: ignore[no-untyped-def]
    request = DecisionRequest(kw.pop("customer_id", 7), channel, NOW, kw.pop("decision_id", "d-1"), **kw)
    cands = policy.candidates(channel, request.candidates)
    return policy.decide(request, features, None, *scores(policy, cands, p))


def test_candidates_follow_the_channel_and_subset(policy: DecisionPolicy) -> None:
    assert policy.candidates("email") == ("no_action", "email_promo", "discount_10", "discount_20", "help_content")
    assert policy.candidates("push") == ("no_action", "push_nudge")
    assert policy.candidates("any", ["help_content", "email_promo"]) == ("no_action", "email_promo", "help_content")
    assert policy.candidates("sms", ["email_promo"]) == ("no_action",)  # not on this channel
    with pytest.raises(ConfigError, match=r"unknown candidate action\(s\) \['nope'\]"):
        policy.candidates("email", ["email_promo", "nope"])
    with pytest.raises(ConfigError, match="unknown channel 'fax'"):
        policy.candidates("fax")


def test_best_incremental_value_wins_and_the_response_explains_itself(policy: DecisionPolicy) -> None:
    d = decide(policy, HAPPY, {"email_promo": 0.13, "discount_10": 0.16, "discount_20": 0.30, "help_content": 0.11})
    # net: email 0.03*60-0.01=1.79; d10 0.16*54-6-0.01=2.63; d20 0.30*48-6-0.01=8.39; help 0.01*60-0.01=0.59
    assert (d.action, d.greedy_action, d.probability, d.explored, d.control, d.degraded) == (
        "discount_20",
        "discount_20",
        1.0,
        False,
        False,
        False,
    )
    assert [c.action for c in d.candidates] == [
        "discount_20",
        "discount_10",
        "email_promo",
        "help_content",
        "no_action",
    ]
    top = d.candidates[0]
    assert (top.rank, top.eligible, top.value) == (1, True, pytest.approx(48.0))
    assert top.net_value == pytest.approx(0.30 * 48 - 0.10 * 60 - 0.01) and top.uplift == pytest.approx(0.20)
    assert d.ruleset_version == policy.ruleset.version and d.suppressed == () and d.shadow == ()


def test_guardrails_suppress_with_rule_ids_and_messages(policy: DecisionPolicy) -> None:
    customer = {**HAPPY, "open_tickets": 1, "orders_180d": 2}
    d = decide(policy, customer, {"email_promo": 0.2, "discount_10": 0.3, "discount_20": 0.4, "help_content": 0.11})
    assert d.action == "help_content"
    suppressed = {s.action: s.rule_ids for s in d.suppressed}
    assert suppressed == {
        "email_promo": ("no_promo_open_ticket",),
        "discount_10": ("no_promo_open_ticket",),
        "discount_20": ("no_promo_open_ticket", "deep_discount_first_purchase"),
    }
    assert d.suppressed[0].messages == ("Open service ticket: promotions are paused until it is resolved.",)
    assert [c.action for c in d.candidates if not c.eligible] == ["email_promo", "discount_10", "discount_20"]


def test_no_action_wins_when_nothing_adds_value_and_levers_apply(policy: DecisionPolicy) -> None:
    d = decide(policy, HAPPY, {"email_promo": 0.09, "discount_10": 0.1, "discount_20": 0.1, "help_content": 0.1})
    assert d.action == "no_action" and d.candidates[0].net_value == 0.0
    gold = decide(policy, {**HAPPY, "tier": "gold"}, {"discount_10": 0.2})
    d10 = next(c for c in gold.candidates if c.action == "discount_10")
    assert d10.lever == 0.5 and d10.net_value == pytest.approx((0.2 * 54 - 6 - 0.01) * 0.5)


def test_shadow_rules_never_change_the_served_action(catalog: ActionCatalog, shipped: Ruleset) -> None:
    specs = [s.model_dump(mode="json", exclude_none=True) for s in shipped.specs]
    night = [{**s, "mode": "enforce"} if s["id"] == "sms_quiet_hours" else s for s in specs]
    enforced = DecisionPolicy(catalog, build_ruleset({"version": "x", "rules": night}, dict(shipped.params)), GREEDY)
    shadowed = DecisionPolicy(catalog, shipped, GREEDY)
    request = DecisionRequest(7, "sms", NOW - 12 * 3600, "d-night")  # 22:00 UTC
    p, rev = scores(shadowed, shadowed.candidates("sms"), {"sms_reminder": 0.3})
    a = shadowed.decide(request, HAPPY, None, p, rev)
    b = enforced.decide(request, HAPPY, None, p, rev)
    assert a.action == "sms_reminder" and [h.rule_id for h in a.shadow] == ["sms_quiet_hours"]
    assert b.action == "no_action" and b.suppressed[0].rule_ids == ("sms_quiet_hours",)


def test_control_group_exploration_and_replay(catalog: ActionCatalog, shipped: Ruleset) -> None:
    policy = DecisionPolicy(catalog, shipped, Exploration(rate=0.5, control_share=0.3, control_salt="t"))
    members = [c for c in range(1, 200) if in_control_group(c, 0.3, "t")]
    outsiders = [c for c in range(1, 200) if c not in members]
    p = {"email_promo": 0.2, "discount_10": 0.1, "discount_20": 0.1, "help_content": 0.1}
    ctrl = decide(policy, HAPPY, p, customer_id=members[0])
    assert (ctrl.action, ctrl.probability, ctrl.control, ctrl.greedy_action) == ("no_action", 1.0, True, "email_promo")
    served = [decide(policy, HAPPY, p, customer_id=outsiders[0], decision_id=f"x{i}") for i in range(60)]
    assert {d.action for d in served} == {"email_promo", "discount_10", "discount_20", "help_content", "no_action"}
    for d in served:
        assert d.probability == pytest.approx(1 - 0.5 + 0.1 if d.action == "email_promo" else 0.1)
    again = decide(policy, HAPPY, p, customer_id=outsiders[0], decision_id="x3")
    assert again == served[3]


def test_fallback_and_bad_scores(policy: DecisionPolicy) -> None:
    request = DecisionRequest(7, "email", NOW, "d-9")
    d = policy.fallback(request, "feature store unreachable")
    assert (d.action, d.probability, d.degraded, d.reason, d.candidates) == (
        "no_action",
        1.0,
        True,
        "feature store unreachable",
        (),
    )
    assert d.ruleset_version == policy.ruleset.version
    with_rules = policy.fallback(request, "model failed", policy.rules(request, {"email_opt_in": 0}))
    assert with_rules.suppressed[0].rule_ids == ("consent_email",)
    with pytest.raises(DataError, match="one score per candidate"):
        policy.decide(request, HAPPY, None, np.zeros(3), np.zeros(3))
    with pytest.raises(DataError, match="non-finite"):
        policy.decide(request, HAPPY, None, np.full(5, np.nan), np.zeros(5))


def test_batch_rows_equal_single_decisions(catalog: ActionCatalog, shipped: Ruleset) -> None:
    policy = DecisionPolicy(catalog, shipped, Exploration(rate=0.2, control_share=0.1))
    rng = np.random.default_rng(5)
    n = 150
    features = {
        "email_opt_in": rng.integers(0, 2, n),
        "open_tickets": rng.integers(0, 2, n),
        "orders_180d": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 3, n)),
        "tier": np.array([rng.choice(["gold", "silver", None]) for _ in range(n)], dtype=object),
        "cart_open": rng.integers(0, 2, n),
        "hours_since_cart_abandoned": rng.uniform(0, 100, n),
    }
    cands = policy.candidates("email")
    p = rng.uniform(0.05, 0.3, (n, len(cands)))
    rev = p * 55.0
    batch = decide_batch(policy, np.arange(1, n + 1), features, p, rev, channel="email", now=NOW)
    assert len(batch) == n and batch.served.control.any() and batch.served.explored.any()
    for i in range(n):
        row = {name: values[i] for name, values in features.items()}
        request = DecisionRequest(i + 1, "email", NOW, batch.decision_ids[i])
        assert batch.decision(i) == policy.decide(request, row, None, p[i], rev[i]), i
    columns = batch.columns()
    assert columns["action"].tolist() == [batch.decision(i).action for i in range(n)]
    i = next(i for i in range(n) if features["email_opt_in"][i] == 0)
    assert "email_promo:consent_email" in columns["suppressed"][i]
    with pytest.raises(DataError, match=r"scores must be \(150, 5\)"):
        decide_batch(policy, np.arange(n), features, p[:, :3], rev[:, :3], channel="email", now=NOW)


def test_an_average_effect_is_flagged_on_its_candidate_in_single_and_batch_decisions(
    catalog: ActionCatalog, shipped: Ruleset
) -> None:
    """Where the model's overlap guard scored an action by its average effect, the decision says so on that
    candidate (and the batch output on the served action), single and batch alike."""
    policy = DecisionPolicy(catalog, shipped, Exploration(rate=0.2, control_share=0.0))
    rng = np.random.default_rng(8)
    n = 60
    features = {name: np.full(n, value, dtype=object) for name, value in HAPPY.items()}
    cands = policy.candidates("email")
    p = rng.uniform(0.05, 0.3, (n, len(cands)))
    rev = p * 55.0
    mask = rng.random((n, len(cands))) < 0.3
    mask[:, cands.index(catalog.control)] = False
    batch = decide_batch(policy, np.arange(1, n + 1), features, p, rev, channel="email", now=NOW, average_effect=mask)
    served = batch.columns()
    for i in range(n):
        request = DecisionRequest(i + 1, "email", NOW, batch.decision_ids[i])
        single = policy.decide(request, HAPPY, None, p[i], rev[i], average_effect=mask[i])
        assert batch.decision(i) == single, i
        flagged = {c.action: c.average_effect for c in single.candidates}
        assert flagged == dict(zip(cands, mask[i].tolist(), strict=True))
        assert served["average_effect"][i] == mask[i, cands.index(single.action)]
    assert served["average_effect"].any() and not served["average_effect"].all()
    plain = policy.decide(DecisionRequest(1, "email", NOW, "d-1"), HAPPY, None, p[0], rev[0])
    assert not any(c.average_effect for c in plain.candidates)
    with pytest.raises(DataError, match=r"average_effect must be \(60, 5\)"):
        decide_batch(policy, np.arange(n), features, p, rev, channel="email", now=NOW, average_effect=mask[:, :2])


def test_degraded_batch_rows_equal_single_fallbacks(catalog: ActionCatalog, shipped: Ruleset) -> None:
    """A batch row with a degradation (unknown customer, stale features) is served exactly what /decide's
    fallback serves: the control action, probability 1, its reason, rule hits only when features were known."""
    from nextbest.core.degradation import DecisionInputs, degradation

    policy = DecisionPolicy(catalog, shipped, Exploration(rate=0.5, control_share=0.2))
    n = 40
    features = {"email_opt_in": np.zeros(n, dtype=int), "open_tickets": np.ones(n, dtype=int)}
    cands = policy.candidates("email")
    p = np.full((n, len(cands)), 0.3)
    rev = p * 80.0
    fresh, stale = {"profile": "fresh"}, {"profile": "stale", "orders": "fresh"}
    status = [fresh if i % 3 == 0 else stale if i % 3 == 1 else {"profile": "missing"} for i in range(n)]
    ids = [f"C{i}" for i in range(n)]
    fallbacks = [degradation(DecisionInputs(c, view_status=s)) for c, s in zip(ids, status, strict=True)]
    batch = decide_batch(policy, ids, features, p, rev, channel="email", now=NOW, degradations=fallbacks)
    columns = batch.columns(scores=True)
    for i in range(n):
        got = batch.decision(i)
        if fallbacks[i] is None:
            row = {name: values[i] for name, values in features.items()}
            request = DecisionRequest(ids[i], "email", NOW, batch.decision_ids[i])
            assert got == policy.decide(request, row, None, p[i], rev[i])
            assert not columns["degraded"][i] and not np.isnan(columns["net_value"][i])
            continue
        request = DecisionRequest(ids[i], "email", NOW, batch.decision_ids[i])
        row = {name: values[i] for name, values in features.items()}
        rules = policy.rules(request, row, None) if fallbacks[i].with_rules else None  # type: ignore[union-attr]
        assert got == policy.fallback(request, fallbacks[i].reason, rules)  # type: ignore[union-attr]
        assert got.action == catalog.control and got.probability == 1.0 and got.degraded
        assert columns["action"][i] == catalog.control and columns["probability"][i] == 1.0
        assert columns["degraded"][i] and columns["reason"][i] == got.reason
        assert not columns["explored"][i] and not columns["control"][i]
        assert np.isnan(columns["net_value"][i]) and np.isnan(columns[f"net_value__{cands[0]}"][i])
        assert bool(columns["suppressed"][i]) == (i % 3 == 1)  # stale: the rules still explain; unknown: nothing
    assert columns["reason"][1].startswith("stale or missing features: profile (stale)")
    assert columns["reason"][2] == "unknown customer C2: no features"
    assert batch.served.explored.any() or batch.served.control.any()  # the model's rows still explore
