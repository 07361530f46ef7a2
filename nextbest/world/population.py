"""Who the customers are: observable profile plus latent traits that drive their behaviour.

The latent traits (activity, price sensitivity, aversion to contact...) are never written as features. They
shape the event history, and the event history is what features (and the true response) are computed from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextbest.world.config import DAY, WorldConfig

REGIONS = np.array(["north", "south", "east", "west", "central"])
TIERS = np.array(["bronze", "silver", "gold"])


@dataclass(frozen=True)
class Population:
    customer_id: np.ndarray  # int64, 1..N
    age: np.ndarray
    region: np.ndarray  # str
    tier: np.ndarray  # str
    app_user: np.ndarray  # int64 0/1
    signup_ts: np.ndarray  # int64 seconds
    # Latent traits: rates per 30 days and propensities in [0, 1].
    order_rate: np.ndarray
    session_rate: np.ndarray
    price_sensitivity: np.ndarray
    aversion: np.ndarray
    aov: np.ndarray
    ticket_rate: np.ndarray
    consent_email: np.ndarray
    consent_sms: np.ndarray
    consent_push: np.ndarray

    @property
    def size(self) -> int:
        return int(self.customer_id.size)


def draw_population(cfg: WorldConfig, rng: np.random.Generator) -> Population:
    n = cfg.customers
    age = np.clip(rng.normal(42, 14, n), 18, 85).astype(np.int64)
    young = (age < 35).astype(float)
    old = (age > 55).astype(float)
    region = REGIONS[rng.choice(REGIONS.size, n, p=[0.22, 0.24, 0.18, 0.2, 0.16])]
    tenure_days = rng.uniform(cfg.history_days + 30, 2_400, n)
    signup_ts = (cfg.as_of_ts - tenure_days * DAY).astype(np.int64)

    order_rate = rng.lognormal(np.log(0.55), 0.85, n)
    session_rate = order_rate * 2.5 + rng.lognormal(np.log(2.0), 0.7, n)
    price_sensitivity = np.clip(rng.beta(0.7, 1.5, n) + 0.12 * young - 0.08 * old, 0.0, 1.0)
    aversion = np.clip(rng.beta(0.6, 1.5, n) + 0.10 * old, 0.0, 1.0)
    aov = rng.lognormal(np.log(52), 0.35, n) * (1.0 + 0.25 * (1 - price_sensitivity))

    spend = order_rate * aov
    gold_cut, silver_cut = np.quantile(spend, [0.85, 0.55])
    tier = np.where(spend >= gold_cut, "gold", np.where(spend >= silver_cut, "silver", "bronze"))

    app_user = (rng.random(n) < 0.25 + 0.3 * young - 0.12 * old + 0.1 * (order_rate > 1)).astype(np.int64)
    ticket_rate = 0.07 * (1 + np.minimum(order_rate, 3.0)) * rng.lognormal(0, 0.5, n)
    consent_email = (rng.random(n) < 0.82 - 0.35 * aversion).astype(np.int64)
    consent_sms = (rng.random(n) < 0.45 - 0.25 * aversion).astype(np.int64)
    consent_push = (app_user * (rng.random(n) < 0.7 - 0.3 * aversion)).astype(np.int64)

    return Population(
        customer_id=np.arange(1, n + 1, dtype=np.int64),
        age=age,
        region=region,
        tier=tier,
        app_user=app_user,
        signup_ts=signup_ts,
        order_rate=order_rate,
        session_rate=session_rate,
        price_sensitivity=price_sensitivity,
        aversion=aversion,
        aov=aov,
        ticket_rate=ticket_rate,
        consent_email=consent_email,
        consent_sms=consent_sms,
        consent_push=consent_push,
    )
