"""The raw event history: orders, sessions, abandoned carts, service tickets, consent changes and background
marketing contacts, each a table of numpy columns. Behaviour follows the population's latent traits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nextbest.world.config import DAY, WorldConfig
from nextbest.world.population import Population
from nextbest.world.timeline import poisson_times

Table = dict[str, np.ndarray]
CHANNELS = ("email", "sms", "push")
# Background newsletters per 30 days while the customer is opted in.
_CONTACT_RATES = {"email": 4.0, "sms": 0.6, "push": 2.5}


@dataclass
class History:
    orders: Table
    sessions: Table
    carts: Table
    tickets: Table
    consents: Table  # one row per (customer, channel) change, plus the initial state at signup
    contacts: Table
    extra: dict[str, Table] = field(default_factory=dict)


def _orders(rng: np.random.Generator, pop: Population, start: int, end: int) -> Table:
    idx, ts = poisson_times(rng, np.arange(pop.size), pop.order_rate, start, end)
    ps = pop.price_sensitivity[idx]
    coupon = (rng.random(idx.size) < 0.05 + 0.55 * ps).astype(np.int64)
    amount = pop.aov[idx] * rng.lognormal(-0.045, 0.3, idx.size) * np.where(coupon == 1, 0.85, 1.0)
    return {
        "customer_id": pop.customer_id[idx],
        "ts": ts,
        "amount": np.round(amount, 2),
        "coupon_used": coupon,
    }


def _sessions(rng: np.random.Generator, pop: Population, start: int, end: int) -> Table:
    idx, ts = poisson_times(rng, np.arange(pop.size), pop.session_rate, start, end)
    app = ((pop.app_user[idx] == 1) & (rng.random(idx.size) < 0.7)).astype(np.int64)
    return {"customer_id": pop.customer_id[idx], "ts": ts, "is_app": app}


def _carts(rng: np.random.Generator, pop: Population, start: int, end: int) -> Table:
    rate = (0.2 + 0.8 * pop.price_sensitivity) * pop.session_rate * 0.12
    idx, ts = poisson_times(rng, np.arange(pop.size), rate, start, end)
    value = pop.aov[idx] * rng.lognormal(0.0, 0.4, idx.size)
    return {"customer_id": pop.customer_id[idx], "ts": ts, "cart_value": np.round(value, 2)}


def _tickets(rng: np.random.Generator, pop: Population, start: int, end: int) -> Table:
    idx, opened = poisson_times(rng, np.arange(pop.size), pop.ticket_rate, start, end)
    duration = np.maximum(rng.exponential(4.0 * DAY, idx.size), 3_600).astype(np.int64)
    severity = rng.choice([1, 2, 3], idx.size, p=[0.5, 0.35, 0.15]).astype(np.int64)
    return {
        "ticket_id": np.arange(1, idx.size + 1, dtype=np.int64),
        "customer_id": pop.customer_id[idx],
        "opened_ts": opened,
        "closed_ts": opened + duration,  # may lie after as_of: the ticket is still open
        "severity": severity,
    }


def _consents(rng: np.random.Generator, pop: Population, start: int, end: int) -> Table:
    """Initial opt-in state at signup and at most one change per channel during the history."""
    rows: dict[str, list[np.ndarray]] = {"customer_id": [], "ts": [], "channel": [], "opt_in": []}
    initial = {"email": pop.consent_email, "sms": pop.consent_sms, "push": pop.consent_push}
    for channel in CHANNELS:
        state = initial[channel]
        rows["customer_id"].append(pop.customer_id)
        rows["ts"].append(pop.signup_ts)
        rows["channel"].append(np.full(pop.size, channel))
        rows["opt_in"].append(state)
        p_change = np.where(state == 1, 0.08 + 0.30 * pop.aversion, 0.06)
        if channel == "push":
            p_change = p_change * pop.app_user
        changes = rng.random(pop.size) < p_change
        rows["customer_id"].append(pop.customer_id[changes])
        rows["ts"].append(rng.integers(start, end, int(changes.sum())))
        rows["channel"].append(np.full(int(changes.sum()), channel))
        rows["opt_in"].append(1 - state[changes])
    return {k: np.concatenate(v) for k, v in rows.items()}


def consent_state(consents: Table, channel: str, customer_id: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Opt-in (0/1) of each customer on ``channel`` at time ``t`` (last change at or before t)."""
    from nextbest.world.timeline import EventIndex

    mask = consents["channel"] == channel
    index = EventIndex(consents["customer_id"][mask], consents["ts"][mask], 0, opt_in=consents["opt_in"][mask])
    found, value = index.last(customer_id, t, "opt_in")
    return np.where(found, value, 0).astype(np.int64)


def _contacts(rng: np.random.Generator, pop: Population, consents: Table, start: int, end: int) -> Table:
    parts: list[Table] = []
    open_p = 0.04 + 0.45 * (1.0 - pop.aversion) ** 2
    for channel in CHANNELS:
        rate = np.full(pop.size, _CONTACT_RATES[channel])
        idx, ts = poisson_times(rng, np.arange(pop.size), rate, start, end)
        cust = pop.customer_id[idx]
        allowed = consent_state(consents, channel, cust, ts) == 1
        idx, ts, cust = idx[allowed], ts[allowed], cust[allowed]
        opened = (
            (rng.random(idx.size) < open_p[idx]).astype(np.int64)
            if channel == "email"
            else np.zeros(idx.size, np.int64)
        )
        parts.append(
            {
                "customer_id": cust,
                "ts": ts,
                "channel": np.full(idx.size, channel),
                "source": np.full(idx.size, "newsletter"),
                "opened": opened,
            }
        )
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def draw_history(cfg: WorldConfig, pop: Population, rng: np.random.Generator) -> History:
    start, end = cfg.start_ts, cfg.as_of_ts
    consents = _consents(rng, pop, start, end)
    return History(
        orders=_orders(rng, pop, start, end),
        sessions=_sessions(rng, pop, start, end),
        carts=_carts(rng, pop, start, end),
        tickets=_tickets(rng, pop, start, end),
        consents=consents,
        contacts=_contacts(rng, pop, consents, start, end),
    )


def concat(a: Table, b: Table) -> Table:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def select(table: Table, mask: np.ndarray) -> Table:
    return {k: v[mask] for k, v in table.items()}
