"""The world's true response: P(convert within the window | state, action) and the expected revenue.

It is a function of the observable state only (the features a model sees), so the best possible policy is
well defined and learnable. Its shape is what makes next-best-action hard in practice:

* sure things (recent, frequent buyers) buy anyway: contact adds little and a discount only gives margin away;
* price-sensitive customers respond to discounts, strongly to the larger one;
* customers averse to contact (low open rates, heavy marketing pressure) buy *less* when contacted;
* promotions while a service ticket is open hurt, while help content helps;
* a recently abandoned cart makes reminders (SMS, push) work;
* an action through a channel without consent (or push without the app) is not delivered at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.errors import ConfigError


@dataclass(frozen=True)
class Effect:
    reach: str | None  # consent channel the action needs to be delivered, None = always delivered
    contact: float  # weight of the generic response to being contacted (negative for averse customers)
    discount_lift: float  # lift for a fully price-sensitive customer
    cart_lift: float  # lift when a cart was abandoned in the last 72 hours
    ticket_help: float  # lift when a service ticket is open
    promo: bool  # promotional: hurts while a service ticket is open


EFFECTS: dict[str, Effect] = {
    "no_action": Effect(None, 0.0, 0.0, 0.0, 0.0, False),
    "email_promo": Effect("email", 1.0, 0.0, 0.0, 0.0, True),
    "sms_reminder": Effect("sms", 0.8, 0.0, 0.30, 0.0, True),
    "discount_10": Effect("email", 1.0, 0.25, 0.0, 0.0, True),
    "discount_20": Effect("email", 1.0, 0.38, 0.0, 0.0, True),
    "push_nudge": Effect("push", 0.7, 0.0, 0.22, 0.0, True),
    "help_content": Effect(None, 0.25, 0.0, 0.0, 0.22, False),
}
DEFAULT_ORDER_VALUE = 50.0


@dataclass(frozen=True)
class TrueResponse:
    """Arrays of shape (customers, actions), actions in catalog order."""

    action_ids: tuple[str, ...]
    p_convert: np.ndarray
    revenue: np.ndarray  # expected revenue (after discount)
    net: np.ndarray  # expected revenue minus the action's fixed cost

    def best(self) -> np.ndarray:
        """Index of the oracle action per customer (ties go to the first, i.e. the control if listed first)."""
        best: np.ndarray = np.argmax(self.net, axis=1)
        return best


def _arr(state: Mapping[str, np.ndarray], name: str, fill: float) -> np.ndarray:
    values = np.asarray(state[name], dtype=np.float64)
    return np.where(np.isnan(values), fill, values)


def latent_scores(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Baseline conversion and the observable proxies of price sensitivity and contact aversion."""
    recency = _arr(state, "days_since_last_order", 400.0)
    cart_recent = (_arr(state, "cart_open", 0.0) == 1) & (_arr(state, "hours_since_cart_abandoned", 1e9) <= 72)
    ticket = _arr(state, "open_tickets", 0.0) > 0
    tier = np.asarray(state["tier"])
    logit = (
        -3.7
        + 0.8 * np.log1p(_arr(state, "orders_90d", 0.0))
        + 1.4 * np.exp(-recency / 21.0)
        + 0.22 * np.log1p(_arr(state, "sessions_30d", 0.0))
        + 1.1 * cart_recent
        + 0.35 * (tier == "gold")
        + 0.15 * (tier == "silver")
        - 0.6 * ticket
    )
    price = np.clip(
        0.1 + 0.9 * _arr(state, "coupon_order_share_180d", 0.25) + 0.05 * _arr(state, "carts_abandoned_30d", 0.0),
        0.0,
        1.0,
    )
    pressure = 0.6 + 0.4 * np.minimum(_arr(state, "contacts_30d", 0.0) / 8.0, 1.0)
    aversion = np.clip((0.40 - _arr(state, "email_open_rate_90d", 0.2)) / 0.36, 0.0, 1.0) * pressure
    return {
        "p0": 1.0 / (1.0 + np.exp(-logit)),
        "price_sensitivity": price,
        "aversion": aversion,
        "cart_recent": cart_recent.astype(np.float64),
        "ticket": ticket.astype(np.float64),
    }


def _reached(state: Mapping[str, np.ndarray], channel: str | None, n: int) -> np.ndarray:
    if channel is None:
        return np.ones(n)
    reached = _arr(state, f"{channel}_opt_in", 0.0) == 1
    if channel == "push":
        reached &= _arr(state, "app_user", 0.0) == 1
    out: np.ndarray = reached.astype(np.float64)
    return out


def true_response(state: Mapping[str, np.ndarray], catalog: ActionCatalog) -> TrueResponse:
    """Evaluate the true response of every customer in ``state`` to every catalog action."""
    missing = [a for a in catalog.ids if a not in EFFECTS]
    if missing:
        raise ConfigError(f"the synthetic world has no true response for action(s) {missing}")
    s = latent_scores(state)
    p0, ps, av, cart, ticket = s["p0"], s["price_sensitivity"], s["aversion"], s["cart_recent"], s["ticket"]
    n = p0.size
    headroom = 1.0 - p0
    order_value = _arr(state, "aov_180d", DEFAULT_ORDER_VALUE)
    p = np.empty((n, len(catalog.ids)))
    for j, action in enumerate(catalog.actions):
        e = EFFECTS[action.id]
        reach = _reached(state, e.reach, n)
        promo_ticket = ticket * float(e.promo)
        lift = (
            headroom
            * (0.08 * e.contact * (1.0 - av) + e.discount_lift * ps**2 + e.cart_lift * cart + e.ticket_help * ticket)
            * (1.0 - 0.7 * promo_ticket)
        )
        damp = (1.0 - 0.8 * e.contact * av**2) * (1.0 - 0.5 * promo_ticket)
        treated = np.clip(p0 * damp + lift, 0.001, 0.97)
        p[:, j] = np.where(reach == 1.0, treated, p0) if action.id != catalog.control else p0
    revenue = p * order_value[:, None] * (1.0 - catalog.discounts[None, :])
    net = revenue - catalog.costs[None, :]
    return TrueResponse(catalog.ids, p, revenue, net)
