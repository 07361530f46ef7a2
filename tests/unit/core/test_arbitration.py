from __future__ import annotations

import numpy as np
import pytest

from nextbest.core.arbitration import choose, propensity_only, rank, score_breakdown
from nextbest.core.catalog import ActionCatalog

IDS = ("no_action", "email_promo", "discount_20")


def test_net_value_is_incremental_revenue_minus_cost(catalog: ActionCatalog) -> None:
    p = np.array([[0.50, 0.52, 0.55]])  # a sure thing
    rev = np.array([[30.0, 31.2, 26.4]])  # 60 per order, 20% off for the discount
    s = score_breakdown(catalog, IDS, p, rev)
    assert s.net_value[0, 0] == 0.0
    assert s.net_value[0, 1] == pytest.approx(1.2 - catalog.by_id["email_promo"].cost)
    assert s.net_value[0, 2] == pytest.approx(-3.6 - catalog.by_id["discount_20"].cost)
    assert s.uplift[0].tolist() == pytest.approx([0.0, 0.02, 0.05])
    assert s.value[0, 2] == pytest.approx(48.0)
    # highest propensity is the discount, but the best incremental value is the email
    assert choose(s.net_value, np.ones((1, 3), bool), s.control_index)[0] == 1
    assert propensity_only(catalog, IDS, p)[0] == 2


def test_control_wins_when_nothing_adds_value_and_ineligible_actions_never_win(catalog: ActionCatalog) -> None:
    p = np.array([[0.1, 0.09, 0.2], [0.1, 0.2, 0.3]])
    rev = np.array([[6.0, 5.4, 9.6], [6.0, 12.0, 14.4]])
    s = score_breakdown(catalog, IDS, p, rev)
    eligible = np.array([[True, True, False], [True, True, True]])
    assert choose(s.net_value, eligible, s.control_index).tolist() == [0, 2]
    order = rank(s.net_value, eligible)
    assert order[0].tolist()[-1] == 2  # the ineligible discount ranks last
    assert propensity_only(catalog, IDS, p, np.array([[True, False, False]] * 2)).tolist() == [0, 0]


def test_the_control_wins_a_tie_and_rounding_is_a_tie() -> None:
    """An action the model cannot tell from the control is worth (x + cost) - x - cost, zero up to rounding:
    the control keeps it, wherever the action sits among the candidates; near-equal actions go to the first."""
    x, cost = 19.45, 0.01
    rounding = (x + cost) - x - cost  # about 1.8e-15, not 0
    assert rounding != 0.0
    net = np.array([[rounding, 0.0, -1.0], [0.0, rounding, -1.0], [0.5, 0.0, 0.5 + 1e-12], [-0.2, 0.0, -0.1]])
    eligible = np.ones(net.shape, dtype=bool)
    assert choose(net[:2], eligible[:2], 1).tolist() == [1, 1]  # control in column 1 wins both ties
    assert choose(net[2:], eligible[2:], 1).tolist() == [0, 1]  # near-equal actions: the first; none pays: control
    assert choose(np.array([[0.3, 0.0]]), np.ones((1, 2), bool), 1, margin=0.3).tolist() == [1]  # not above margin


def test_levers_scale_net_value(catalog: ActionCatalog) -> None:
    s = score_breakdown(
        catalog, IDS, np.array([[0.1, 0.2, 0.2]]), np.array([[6.0, 12.0, 9.6]]), levers=np.array([1.0, 0.5, 1.0])
    )
    assert s.net_value[0, 1] == pytest.approx((6.0 - catalog.by_id["email_promo"].cost) * 0.5)


def test_shape_mismatch_is_rejected(catalog: ActionCatalog) -> None:
    with pytest.raises(ValueError, match="scores must be"):
        score_breakdown(catalog, IDS, np.zeros((2, 3)), np.zeros((2, 2)))
