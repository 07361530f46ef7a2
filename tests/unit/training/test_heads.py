"""The order-value head prices each action as the data says, not only by its discount."""

from __future__ import annotations

import numpy as np

from nextbest.core.catalog import ActionCatalog
from nextbest.training.config import BoosterParams
from nextbest.training.heads import fit_value_head, revenue_per_conversion_is_constant

CATALOG = ActionCatalog.model_validate(
    {
        "channels": ["email"],
        "control": "hold",
        "actions": [
            {"id": "hold", "channels": ["email"], "category": "none", "value": 40, "cost": 0},
            {"id": "gift", "channels": ["email"], "category": "promo", "value": 40, "cost": 0.1},  # pays an incentive
            {"id": "upsell", "channels": ["email"], "category": "promo", "value": 40, "cost": 0.1},  # a dearer product
        ],
    }
)  # same value, same (zero) discount: only the data tells them apart


def _rows(n: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    act = rng.integers(0, 3, n)
    conv = (rng.random(n) < 0.4).astype(np.int64)
    per_conversion = np.array([40.0, 32.0, 55.0])[act] + 4.0 * X[:, 0]
    revenue = conv * (per_conversion + noise * rng.normal(size=n))
    return X, act, conv, revenue


def test_value_head_tells_apart_actions_with_equal_discount_and_different_revenue() -> None:
    params = BoosterParams(num_leaves=7, min_child_samples=30, learning_rate=0.1)
    head = fit_value_head(CATALOG, _rows(12_000, 1, 3.0), _rows(3_000, 2, 3.0), params, [], 20, 0, 2)
    assert head.booster is not None and head.codes is not None
    X = np.zeros((200, 3))
    value = head.predict(X, CATALOG.ids).mean(axis=0)
    assert abs(value[0] - 40) < 2.5 and abs(value[1] - 32) < 2.5 and abs(value[2] - 55) < 2.5, value
    # and it still follows the features within an action
    hi, lo = np.tile([1.0, 0, 0], (50, 1)), np.tile([-1.0, 0, 0], (50, 1))
    assert head.predict(hi, ("upsell",)).mean() - head.predict(lo, ("upsell",)).mean() > 5.0


def test_constant_revenue_per_conversion_gives_the_constants_exactly() -> None:
    """A visit worth 1, a fixed margin net of a per-treatment incentive: the per-action means, no booster."""
    rng = np.random.default_rng(3)
    n = 6_000
    X, act = rng.normal(size=(n, 3)), rng.integers(0, 3, n)
    conv = (rng.random(n) < 0.3).astype(np.int64)
    revenue = conv * np.array([10.0, 9.5, 8.0])[act]
    rows = (X, act, conv, revenue)
    assert revenue_per_conversion_is_constant(CATALOG, rows)
    head = fit_value_head(CATALOG, rows, rows, BoosterParams(), [], 20, 0, 2)
    assert head.booster is None
    assert head.predict(X[:5], CATALOG.ids).tolist() == [[10.0, 9.5, 8.0]] * 5
