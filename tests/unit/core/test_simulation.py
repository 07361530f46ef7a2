"""Rule what-if simulation on a synthetic log whose true effect is known.

The model (the logged scores) believes the email promotion is the best action for everyone. In truth,
customers with an open ticket earn far less from a promotion than from help content. A proposed rule that
pauses promotions during a ticket therefore *gains* value although the model says it loses some: the
off-policy estimate must find the gain (interval covering the truth), the model-based one must not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.core.decision import DecisionPolicy
from nextbest.core.decision_batch import decide_batch
from nextbest.core.exploration import Exploration
from nextbest.core.rules import build_ruleset
from nextbest.core.simulation import LoggedDecision, reads_request_time, replay, simulate
from nextbest.errors import ConfigError, DataError

NOW = int(datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp())
CANDS = ("no_action", "email_promo", "help_content")
P = np.array([0.10, 0.20, 0.15])  # the model's P(convert): the promotion looks best for everyone
N, TICKETS, NO_CONSENT, GOLD = 10_000, 3_000, 500, 2_000
# True expected revenue per action: (no ticket, open ticket).
TRUE_REVENUE = {"no_action": (5.0, 4.0), "email_promo": (12.0, 2.0), "help_content": (6.0, 8.0)}


def rule(rule_id: str, when: str, mode: str = "enforce") -> dict[str, Any]:
    return {"id": rule_id, "description": "d", "owner": "o", "when": when, "effect": "suppress", "message": "m",
            "mode": mode}  # fmt: skip


LIVE_RULES = [
    rule("consent_email", "action.consent == 'email' && !(has(customer.email_opt_in) && customer.email_opt_in == 1)"),
    rule("help_trial", "action.id == 'help_content' && customer.tier == 'gold'", mode="shadow"),
]
PROPOSED_RULE = rule("no_promo_ticket", "action.category == 'promo' && customer.open_tickets > 0")


def policy(catalog: ActionCatalog, rules: list[dict[str, Any]], rate: float = 0.0) -> DecisionPolicy:
    ruleset = build_ruleset({"version": "t", "rules": rules}, {})
    return DecisionPolicy(catalog, ruleset, Exploration(rate=rate, control_share=0.0))


def features() -> dict[str, np.ndarray]:
    """Rows [0, TICKETS) have an open ticket, the next NO_CONSENT rows no email consent; every fifth is gold."""
    i = np.arange(N)
    return {
        "open_tickets": (i < TICKETS).astype(np.int64),
        "email_opt_in": (~((i >= TICKETS) & (i < TICKETS + NO_CONSENT))).astype(np.int64),
        "tier": np.where(i % 5 == 0, "gold", "silver").astype(object),
    }


@pytest.fixture(scope="module")
def log(catalog: ActionCatalog) -> list[LoggedDecision]:
    """Decisions served by the live policy with 30% exploration, rewards drawn from the true response."""
    rng = np.random.default_rng(5)
    cols = features()
    p = np.tile(P, (N, 1))
    rev = p * 60.0
    served = decide_batch(
        policy(catalog, LIVE_RULES, rate=0.3), list(range(N)), cols, p, rev, channel="email", now=NOW, candidates=CANDS
    )
    action = np.array(CANDS)[served.served.index]
    ticket = cols["open_tickets"] == 1
    mean = np.array([TRUE_REVENUE[a][int(t)] for a, t in zip(action, ticket, strict=True)])
    revenue = 60.0 * (rng.random(N) < mean / 60.0)
    cost = catalog.costs[[catalog.index[a] for a in action]]
    return [
        LoggedDecision(
            customer_id=i,
            channel="email",
            now=NOW + (i % 1800),  # spread over half an hour
            candidates=CANDS,
            p_convert=P,
            expected_revenue=P * 60.0,
            features={k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in cols.items()},
            decision_id=f"d{i}",
            action=str(action[i]),
            probability=float(served.served.probability[i]),
            reward=float(revenue[i] - cost[i]),
            greedy_action=CANDS[int(served.served.greedy[i])],
        )
        for i in range(N)
    ]


def true_change(catalog: ActionCatalog) -> float:
    """Ticket rows move from the promotion to help content; nothing else changes."""
    cost = catalog.by_id
    per_row = (TRUE_REVENUE["help_content"][1] - cost["help_content"].cost) - (
        TRUE_REVENUE["email_promo"][1] - cost["email_promo"].cost
    )
    return TICKETS / N * per_row


def test_transitions_and_rule_hits_are_exact(catalog: ActionCatalog, log: list[LoggedDecision]) -> None:
    report = simulate(policy(catalog, LIVE_RULES), policy(catalog, [*LIVE_RULES, PROPOSED_RULE]), log)
    ix = catalog.index
    assert report.n == N and report.changed == TICKETS
    assert report.transitions[ix["email_promo"], ix["help_content"]] == TICKETS
    assert report.transitions[ix["email_promo"], ix["email_promo"]] == N - TICKETS - NO_CONSENT
    assert report.transitions[ix["help_content"], ix["help_content"]] == NO_CONSENT  # no consent: help either way
    assert report.transitions.sum() == N
    rates = {r.rule_id: r for r in report.rules}
    assert (rates["no_promo_ticket"].live_mode, rates["no_promo_ticket"].proposed_mode) == ("absent", "enforce")
    assert (rates["no_promo_ticket"].live_hits, rates["no_promo_ticket"].proposed_hits) == (0, TICKETS)
    assert (rates["consent_email"].live_hits, rates["consent_email"].proposed_hits) == (NO_CONSENT, NO_CONSENT)
    assert rates["help_trial"].live_mode == "shadow"
    assert rates["help_trial"].live_hits == rates["help_trial"].proposed_hits == N // 5  # shadow hits count
    assert report.replay_agreement == 1.0  # the live replay reproduces every logged greedy choice
    assert report.mix()["help_content"] == (NO_CONSENT, NO_CONSENT + TICKETS)
    data = report.as_dict()
    assert (
        data["changed"] == TICKETS
        and {"from": "email_promo", "to": "help_content", "count": TICKETS} in (data["transitions"])
    )


def test_off_policy_value_change_covers_the_truth(catalog: ActionCatalog, log: list[LoggedDecision]) -> None:
    report = simulate(policy(catalog, LIVE_RULES), policy(catalog, [*LIVE_RULES, PROPOSED_RULE]), log)
    truth = true_change(catalog)  # +1.8 per decision
    assert report.basis == "off-policy" and report.headline.method == "dr"
    for method in ("dr", "snips", "ips"):
        est = report.change[method]
        assert est.ci_low <= truth <= est.ci_high, (method, est)
        assert est.ci_low > 0, (method, est)  # the gain is detected beyond noise
    model = report.change["model"]  # the model believes the promotion is worth more: a loss of 3 per ticket row
    assert model.value == pytest.approx(-3.0 * TICKETS / N)
    assert report.live_value["dr"].n == report.proposed_value["dr"].n == N


def test_without_outcomes_the_change_is_model_based(catalog: ActionCatalog, log: list[LoggedDecision]) -> None:
    from dataclasses import replace

    sampled = [replace(row, action=None, probability=None, reward=None, greedy_action=None) for row in log[:2000]]
    report = simulate(policy(catalog, LIVE_RULES), policy(catalog, [*LIVE_RULES, PROPOSED_RULE]), sampled,
                      source="customers")  # fmt: skip
    assert report.basis == "model" and set(report.change) == {"model"} and report.headline.method == "model"
    expected = -3.0 * sum(1 for row in sampled if row.features["open_tickets"] == 1) / len(sampled)
    est = report.change["model"]
    assert est.value == pytest.approx(expected) and est.ci_low <= expected <= est.ci_high < 0
    assert report.replay_agreement is None


def test_rows_in_one_hour_share_the_request_time_exactly(catalog: ActionCatalog, log: list[LoggedDecision]) -> None:
    hourly = policy(catalog, [*LIVE_RULES, rule("afternoon", "action.id == 'email_promo' && request.hour >= 10")])
    rows = [
        LoggedDecision(**{**row.__dict__, "now": NOW - 3600 + 97 * i})
        for i, row in enumerate(log[TICKETS + NO_CONSENT : TICKETS + NO_CONSENT + 80])
    ]
    assert not reads_request_time(hourly)
    grouped, exact = replay(hourly, rows), replay(hourly, rows, exact_time=True)
    assert np.array_equal(grouped.greedy, exact.greedy)
    assert np.array_equal(grouped.hits["afternoon"], exact.hits["afternoon"])
    assert 0 < grouped.hits["afternoon"].sum() < len(rows)  # rows on both sides of 10:00
    assert reads_request_time(policy(catalog, [rule("late", "request.now > 5 && action.id == 'email_promo'")]))


def test_bad_inputs_are_rejected(catalog: ActionCatalog, log: list[LoggedDecision]) -> None:
    live = policy(catalog, LIVE_RULES)
    with pytest.raises(DataError, match="no decisions"):
        simulate(live, live, [])
    broken = LoggedDecision(**{**log[0].__dict__, "candidates": ("email_promo", "help_content", "fax")})
    with pytest.raises(DataError, match="unknown action"):
        simulate(live, live, [broken])
    other = ActionCatalog.model_validate(
        {**catalog.model_dump(include={"channels", "control", "actions"}), "version": "x"}
    )
    with pytest.raises(ConfigError, match="same catalog"):
        simulate(live, DecisionPolicy(other, live.ruleset), log[:5])
