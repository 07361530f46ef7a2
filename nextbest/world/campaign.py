"""The historical campaign: each customer was assigned one action in one wave, at random with known,
tier-dependent probabilities (so inverse-propensity weighting matters), and the outcome drawn from the true
response. Conversions become real orders, and contacts real contact-history rows, so later features carry
the campaign's consequences and a leaky point-in-time join would be caught.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.world.config import DAY, WorldConfig
from nextbest.world.events import History, Table, concat, select
from nextbest.world.outcome import EFFECTS, TrueResponse

# Logging policy: P(action | tier). Gold customers were given discounts more often, a confounder that naive
# (unweighted) estimates get wrong.
LOGGING_POLICY: dict[str, dict[str, float]] = {
    "bronze": {
        "no_action": 0.20,
        "email_promo": 0.15,
        "sms_reminder": 0.10,
        "discount_10": 0.15,
        "discount_20": 0.10,
        "push_nudge": 0.10,
        "help_content": 0.20,
    },
    "silver": {
        "no_action": 0.20,
        "email_promo": 0.15,
        "sms_reminder": 0.10,
        "discount_10": 0.15,
        "discount_20": 0.10,
        "push_nudge": 0.10,
        "help_content": 0.20,
    },
    "gold": {
        "no_action": 0.14,
        "email_promo": 0.14,
        "sms_reminder": 0.10,
        "discount_10": 0.20,
        "discount_20": 0.20,
        "push_nudge": 0.10,
        "help_content": 0.12,
    },
}


@dataclass(frozen=True)
class Campaign:
    log: Table  # customer_id, ts, campaign_id, action, propensity, converted, revenue
    truth: TrueResponse  # per log row, every action


def logging_probabilities(tier: np.ndarray, catalog: ActionCatalog) -> np.ndarray:
    """(rows, actions) matrix of assignment probabilities in catalog order."""
    probs = np.zeros((tier.size, len(catalog.ids)))
    for name, policy in LOGGING_POLICY.items():
        row = np.array([policy.get(a, 0.0) for a in catalog.ids])
        probs[tier == name] = row / row.sum()
    return probs


def run_campaign(
    cfg: WorldConfig,
    catalog: ActionCatalog,
    customer_id: np.ndarray,
    wave_ts: np.ndarray,
    state: dict[str, np.ndarray],
    truth: TrueResponse,
    rng: np.random.Generator,
) -> Table:
    n = customer_id.size
    probs = logging_probabilities(np.asarray(state["tier"]), catalog)
    cum = probs.cumsum(axis=1)
    chosen = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), len(catalog.ids) - 1)
    rows = np.arange(n)
    p = truth.p_convert[rows, chosen]
    converted = (rng.random(n) < p).astype(np.int64)
    order_value = np.where(np.isnan(state["aov_180d"]), 50.0, state["aov_180d"])
    noise = rng.lognormal(-0.5 * 0.25**2, 0.25, n)
    revenue = np.round(converted * order_value * (1.0 - catalog.discounts[chosen]) * noise, 2)
    return {
        "customer_id": customer_id,
        "ts": wave_ts,
        "campaign_id": np.array([f"wave-{int((cfg.as_of_ts - t) // (7 * DAY)):02d}w" for t in wave_ts]),
        "action": np.asarray(catalog.ids)[chosen],
        "propensity": np.round(probs[rows, chosen], 6),
        "converted": converted,
        "revenue": revenue,
    }


def apply_consequences(
    cfg: WorldConfig,
    catalog: ActionCatalog,
    history: History,
    log: Table,
    state: dict[str, np.ndarray],
    aversion: np.ndarray,
    rng: np.random.Generator,
) -> History:
    """Write the campaign into the history: outcome-window orders, contacts, and opt-outs of annoyed customers.

    ``state`` is the customers' state at their wave (for consents), ``aversion`` their latent aversion.
    """
    window = cfg.conversion_window_days * DAY
    start = np.full(int(log["customer_id"].max()) + 1, -1, dtype=np.int64)
    start[log["customer_id"]] = log["ts"]
    cust = history.orders["customer_id"]
    order_start = np.where(cust < start.size, start[np.minimum(cust, start.size - 1)], -1)
    in_window = (
        (order_start >= 0) & (history.orders["ts"] > order_start) & (history.orders["ts"] <= order_start + window)
    )
    orders = select(history.orders, ~in_window)
    conv = log["converted"] == 1
    k = int(conv.sum())
    discount = catalog.discounts[[catalog.index[a] for a in log["action"][conv]]]
    orders = concat(
        orders,
        {
            "customer_id": log["customer_id"][conv],
            "ts": log["ts"][conv] + rng.integers(3_600, window, k),
            "amount": log["revenue"][conv],
            "coupon_used": (discount > 0).astype(np.int64),
        },
    )
    reach = np.array([EFFECTS[a].reach or "" for a in log["action"]])
    sent = np.zeros(reach.size, dtype=bool)
    for channel in ("email", "sms", "push"):
        ok = state[f"{channel}_opt_in"] == 1
        if channel == "push":
            ok &= state["app_user"] == 1
        sent |= (reach == channel) & ok
    contacts = concat(
        history.contacts,
        {
            "customer_id": log["customer_id"][sent],
            "ts": log["ts"][sent] + 60,  # sent just after the decision time: never in the features it used
            "channel": reach[sent],
            "source": np.full(int(sent.sum()), "campaign"),
            "opened": np.zeros(int(sent.sum()), np.int64),
        },
    )
    annoyed = sent & (rng.random(sent.size) < 0.25 * aversion**2)
    consents = concat(
        history.consents,
        {
            "customer_id": log["customer_id"][annoyed],
            "ts": log["ts"][annoyed] + rng.integers(600, 3 * DAY, int(annoyed.sum())),
            "channel": reach[annoyed],
            "opt_in": np.zeros(int(annoyed.sum()), np.int64),
        },
    )
    return History(
        orders=orders,
        sessions=history.sessions,
        carts=history.carts,
        tickets=history.tickets,
        consents=consents,
        contacts=contacts,
    )
