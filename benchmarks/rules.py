"""Rule evaluation cost per decision, and batch decisioning throughput, in process.

Compares, in the same run and on the same customers (20 candidate actions, 30 rules, varied features and
contact histories):
  1. one decision without rules (arbitration, exploration, result object): the reference;
  2. the same decision with the 30 rules (plus catalog eligibility): the added cost is the rule cost,
     target < 0.3 ms;
  3. rule evaluation alone, and the naive per-(rule, action) CEL evaluation it replaces;
then batch decisioning with inline features (no Feast), target >= 20,000 customers/s.

    python benchmarks/rules.py [--decisions 3000] [--batch 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import measure, report

PROJECT = Path(__file__).resolve().parents[1]
NOW = 1_795_000_000  # 2026-11-18, a Wednesday, 10:13 UTC

# Twelve more rules in the style of the shipped ones (30 in all with the 18 in rules/guardrails.yaml).
EXTRA_RULES = [
    ("young_no_sms", "action.consent == 'sms' && has(customer.age) && customer.age < 21", "suppress"),
    (
        "lapsed_promo_boost",
        "action.category == 'promo' && has(customer.days_since_last_order) && customer.days_since_last_order > 90.0",
        {"lever": 1.3},
    ),
    (
        "heavy_browsers_push",
        "'push' in action.channels && has(customer.sessions_7d) && customer.sessions_7d > 20",
        {"lever": 1.1},
    ),
    (
        "coupon_hunters_damp",
        "'discount' in action.tags && has(customer.coupon_order_share_180d) && customer.coupon_order_share_180d > 0.5",
        {"lever": 0.7},
    ),
    (
        "low_open_rate_email",
        "action.consent == 'email' && has(customer.email_open_rate_90d) && customer.email_open_rate_90d < 0.02",
        "suppress",
    ),
    (
        "new_customer_no_deep_discount",
        "action.discount >= 0.2 && has(customer.tenure_days) && customer.tenure_days < 14.0",
        "suppress",
    ),
    (
        "region_north_help_boost",
        "action.category == 'service' && has(customer.region) && customer.region == 'north'",
        {"lever": 1.1},
    ),
    (
        "recent_contact_pause",
        "action.category != 'service' && has(customer.days_since_last_contact) "
        "&& customer.days_since_last_contact < 0.5",
        "suppress",
    ),
    ("category_cooldown", "action.category == 'promo' && history.contacts_24h >= 2", "suppress"),
    ("sms_streak_pause", "action.consent == 'sms' && history.ignored_streak.sms >= 2", "suppress"),
    ("weekend_reminder_boost", "action.category == 'reminder' && request.weekday >= 5", {"lever": 1.2}),
    (
        "high_value_cart_boost",
        "'cart' in action.tags && has(customer.last_cart_value) && customer.last_cart_value > 150.0",
        {"lever": 1.2},
    ),
]


def build(decisions: int, seed: int = 0) -> tuple[object, ...]:
    import yaml

    from nextbest.core.catalog import ActionCatalog, load_catalog
    from nextbest.core.contact import HistoryBuilder
    from nextbest.core.decision import DecisionPolicy
    from nextbest.core.exploration import Exploration
    from nextbest.core.rules import build_ruleset, load_params

    shipped = load_catalog(PROJECT / "catalog" / "actions.yaml")
    actions = [a.model_dump() for a in shipped.actions]
    treatments = [a for a in actions if a["id"] != shipped.control]
    clones = [{**t, "id": f"{t['id']}_{i}"} for i in range(2, 5) for t in treatments]
    catalog = ActionCatalog.model_validate({**shipped.model_dump(), "actions": [*actions, *clones][:20]})
    plain = ActionCatalog.model_validate(
        {**catalog.model_dump(), "actions": [{**a.model_dump(), "eligibility": None} for a in catalog.actions]}
    )
    doc = yaml.safe_load((PROJECT / "rules" / "guardrails.yaml").read_text())
    doc["rules"] += [
        {"id": rid, "description": rid, "owner": "bench@example.com", "when": when, "effect": eff, "message": rid}
        for rid, when, eff in EXTRA_RULES
    ]
    params = load_params(PROJECT / "rules" / "params" / "default.yaml")
    ruleset = build_ruleset(doc, params, source="bench")
    empty = build_ruleset({"version": "none", "rules": []}, {}, source="none")
    exploration = Exploration(rate=0.05, control_share=0.02)
    with_rules = DecisionPolicy(catalog, ruleset, exploration)
    without = DecisionPolicy(plain, empty, exploration)
    assert ruleset.rule_count == 30 and len(catalog.actions) == 20

    rng = np.random.default_rng(seed)
    builder = HistoryBuilder(catalog.channels, catalog.control)
    customers, histories = [], []
    for _ in range(decisions):
        customers.append(random_customer(rng))
        contacts = [
            (
                NOW - int(rng.integers(0, 40 * 86_400)),
                str(rng.choice(catalog.ids[1:])),
                str(rng.choice(["email", "sms", "push"])),
                str(rng.choice(["sent", "sent", "click", "ignored"])),
            )
            for _ in range(int(rng.integers(0, 12)))
        ]
        histories.append(builder.build(contacts, NOW))
    return catalog, with_rules, without, customers, histories


def random_customer(rng: np.random.Generator) -> dict[str, object]:
    def maybe(value: object, p_missing: float = 0.1) -> object:
        return None if rng.random() < p_missing else value

    return {
        "age": int(rng.integers(18, 80)),
        "region": str(rng.choice(["north", "south", "east", "west"])),
        "tier": str(rng.choice(["bronze", "silver", "gold"])),
        "app_user": int(rng.random() < 0.5),
        "orders_180d": int(rng.poisson(1.5)),
        "coupon_order_share_180d": maybe(float(rng.random())),
        "email_open_rate_90d": maybe(float(rng.random() * 0.5)),
        "sessions_7d": int(rng.poisson(6)),
        "cart_open": int(rng.random() < 0.3),
        "last_cart_value": maybe(float(rng.gamma(2.0, 40.0)), 0.5),
        "open_tickets": int(rng.random() < 0.1),
        "max_open_severity": int(rng.integers(0, 4)),
        "email_opt_in": int(rng.random() < 0.7),
        "sms_opt_in": int(rng.random() < 0.4),
        "push_opt_in": int(rng.random() < 0.5),
        "tenure_days": float(rng.uniform(0, 2000)),
        "days_since_last_order": maybe(float(rng.uniform(0, 300)), 0.3),
        "hours_since_cart_abandoned": maybe(float(rng.uniform(0, 200)), 0.6),
        "days_since_last_contact": maybe(float(rng.uniform(0, 30)), 0.2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=3_000)
    parser.add_argument("--batch", type=int, default=20_000)
    args = parser.parse_args()

    from nextbest.core.decision import DecisionPolicy, DecisionRequest
    from nextbest.core.decision_batch import decide_batch
    from nextbest.core.rules.values import RequestInfo

    _catalog, with_rules, without, customers, histories = build(args.decisions + 100)
    assert isinstance(with_rules, DecisionPolicy) and isinstance(without, DecisionPolicy)
    cands = with_rules.candidates("any")
    k = len(cands)
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.3, (len(customers), k))
    rev = p * 60.0
    requests = [DecisionRequest(i, "any", NOW, f"d-{i}") for i in range(len(customers))]

    def plain(i: int) -> object:
        return without.decide(requests[i], customers[i], histories[i], p[i], rev[i])

    def ruled(i: int) -> object:
        return with_rules.decide(requests[i], customers[i], histories[i], p[i], rev[i])

    info = RequestInfo("any", NOW)
    engine = with_rules.engine

    def rules_only(i: int) -> object:
        return engine.evaluate(cands, customers[i], info, histories[i])

    def naive(i: int) -> object:
        return engine.evaluate_naive(cands, customers[i], info, histories[i])

    n = args.decisions
    timings = [
        measure("decision without rules", plain, n),
        measure("decision with 30 rules", ruled, n),
        measure("rule evaluation alone", rules_only, n),
        measure("naive CEL per (rule, action)", naive, 30, warmup=3),
    ]
    print(f"\none decision, {k} candidates, {engine.ruleset.rule_count} rules (+ catalog eligibility), {n:,} decisions")
    report(timings, "decision without rules")
    added = timings[1].p50 - timings[0].p50
    print(f"\nadded by rules, p50: {added:.3f} ms  (target < 0.300 ms: {'met' if added < 0.3 else 'MISSED'})")

    # Batch: inline features as columns, no Feast.
    big = [customers[i % len(customers)] for i in range(args.batch)]
    names = sorted({key for c in big for key in c})
    columns = {name: [c.get(name) for c in big] for name in names}
    pb = rng.uniform(0.01, 0.3, (args.batch, k))
    ids = np.arange(1, args.batch + 1)
    hist = [histories[i % len(histories)] for i in range(args.batch)]
    print(f"\nbatch decisioning, {args.batch:,} customers, {k} candidates, inline features")
    print(f"{'':<44}{'seconds':>10}{'customers/s':>14}")
    for label, h in (("never contacted (campaign default)", None), ("with per-customer contact history", hist)):
        decide_batch(
            with_rules,
            ids[:500],
            {n_: v[:500] for n_, v in columns.items()},
            pb[:500],
            pb[:500] * 60,
            channel="any",
            now=NOW,
            histories=None if h is None else h[:500],
        )
        start = time.perf_counter()
        decide_batch(with_rules, ids, columns, pb, pb * 60.0, channel="any", now=NOW, histories=h)
        secs = time.perf_counter() - start
        rate = args.batch / secs
        print(f"{label:<44}{secs:>10.3f}{rate:>14,.0f}  (target >= 20,000: {'met' if rate >= 20_000 else 'MISSED'})")


if __name__ == "__main__":
    main()
