"""The policy model's fast scoring paths give exactly what the plain LightGBM calls give: the per-request C-API
call, the S-learner's scoring matrix built from a template, and the value head scored once per distinct
discount."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from nextbest.core.catalog import ActionCatalog
from nextbest.model.descriptors import ActionDescriptors
from nextbest.model.encoding import FeatureEncoder
from nextbest.model.policy_model import FAST_PREDICT_ROWS, ConversionHead, PolicyModel, ValueHead, _booster_predict

CATALOG = ActionCatalog.model_validate(
    {
        "channels": ["email", "sms"],
        "control": "none",
        "actions": [
            {"id": "none", "channels": ["email", "sms"], "category": "none", "value": 0, "cost": 0},
            {"id": "offer", "channels": ["email"], "category": "promo", "value": 50, "cost": 0.1,
             "discount": 0.1, "consent": "email"},
            {"id": "offer_sms", "channels": ["sms"], "category": "promo", "value": 50, "cost": 0.1,
             "discount": 0.1, "consent": "sms"},
            {"id": "nag", "channels": ["email"], "category": "reminder", "value": 50, "cost": 0.1},
        ],
    }
)  # fmt: skip
FEATURES = ["x0", "x1", "email_opt_in", "sms_opt_in"]


def _data(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    X[:, 2:] = rng.integers(0, 2, (n, 2))
    X[rng.random(n) < 0.1, 1] = np.nan
    return X


@pytest.fixture(scope="module")
def model() -> PolicyModel:
    rng = np.random.default_rng(0)
    n = 4000
    X, codes = _data(n, 1), rng.integers(0, len(CATALOG.ids), n)
    descriptors = ActionDescriptors.from_catalog(CATALOG, FEATURES)
    params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 1}
    y = (rng.random(n) < 1 / (1 + np.exp(-(X[:, 0] + codes * 0.3)))).astype(float)
    conversion = lgb.train(params, lgb.Dataset(descriptors.design(X, codes), y), num_boost_round=20)
    disc = np.asarray(descriptors.discount)[codes]
    value = lgb.train({**params, "objective": "regression"}, lgb.Dataset(np.column_stack([X, disc]), 50 - 40 * disc),
                      num_boost_round=10)  # fmt: skip
    return PolicyModel(
        encoder=FeatureEncoder(tuple(FEATURES), {}),
        action_ids=CATALOG.ids,
        control="none",
        conversion=ConversionHead("s", {"all": conversion}, descriptors),
        value=ValueHead(value, {a.id: a.discount for a in CATALOG.actions}, {}),
    )


@pytest.mark.parametrize("rows", [1, 7, FAST_PREDICT_ROWS, FAST_PREDICT_ROWS + 1])
def test_fast_booster_call_equals_booster_predict(model: PolicyModel, rows: int) -> None:
    booster = model.conversion.boosters["all"]
    X = model.conversion.descriptors.design(_data(rows, 2), np.zeros(rows, dtype=int))  # type: ignore[union-attr]
    for threads in (1, 2):
        assert np.array_equal(_booster_predict(booster, X, threads), booster.predict(X, num_threads=threads))


@pytest.mark.parametrize("actions", [CATALOG.ids, ("nag", "none"), ("offer_sms", "offer", "none")])
@pytest.mark.parametrize("rows", [1, 50])
def test_scores_equal_the_plain_computation(model: PolicyModel, actions: tuple[str, ...], rows: int) -> None:
    X = _data(rows, 3)
    d = model.conversion.descriptors
    assert d is not None
    codes = np.repeat([CATALOG.ids.index(a) for a in actions], rows)
    tiled = np.tile(X, (len(actions), 1))
    assert np.array_equal(d.stacked(X, actions), d.design(tiled, codes), equal_nan=True)
    p_ref = model.conversion.boosters["all"].predict(d.design(tiled, codes)).reshape(len(actions), rows).T
    disc = np.repeat([model.value.discounts[a] for a in actions], rows)
    v_ref = np.maximum(model.value.booster.predict(np.column_stack([tiled, disc])), 0)  # type: ignore[union-attr]
    p, revenue = model.predict(X, actions)
    p_ref = np.clip(p_ref, 1e-4, 1 - 1e-4)
    assert np.array_equal(p, p_ref)
    assert np.array_equal(revenue, p_ref * v_ref.reshape(len(actions), rows).T)


def test_a_blended_model_saves_loads_and_scores_as_the_sum_of_its_members(model: PolicyModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A blend (a conversion member times the value head, a net-value member with the costs added back, and
    the average-effect member) round-trips through save/load and scores as the weighted sum of its members."""
    from nextbest.model.heads import ActionHead, Member

    rng = np.random.default_rng(4)
    d = model.conversion.descriptors
    assert d is not None
    X, codes = _data(3000, 5), rng.integers(0, len(CATALOG.ids), 3000)
    net = lgb.train({"objective": "regression", "num_leaves": 7, "verbose": -1, "num_threads": 1},
                    lgb.Dataset(d.design(X, codes), X[:, 0] * codes), num_boost_round=15)  # fmt: skip
    offset = {a.id: a.cost for a in CATALOG.actions}
    average = {a: 1.0 + i for i, a in enumerate(CATALOG.ids)}
    blend = PolicyModel(
        encoder=model.encoder,
        action_ids=model.action_ids,
        control=model.control,
        conversion=model.conversion,
        value=model.value,
        calibration=(1.1, -0.2),
        members=(
            Member(0.5, "conversion", model.conversion, (1.1, -0.2), "s-0"),
            Member(0.3, "revenue", ActionHead("s", {"all": net}, d), None, "s-revenue-0", offset),
            Member(0.2, "revenue", None, None, "average", average),
        ),
    )
    Xt = _data(40, 6)
    p, revenue = blend.predict(Xt, ("nag", "none", "offer"))
    loaded = PolicyModel.load(blend.save(tmp_path / "blend"))
    p2, revenue2 = loaded.predict(Xt, ("nag", "none", "offer"))
    assert np.array_equal(p, p2) and np.array_equal(revenue, revenue2)
    v = model.value.predict(Xt, ("nag", "none", "offer"))
    net_part = net.predict(d.stacked(Xt, ("nag", "none", "offer"))).reshape(3, 40).T + np.array(
        [offset[a] for a in ("nag", "none", "offer")]
    )
    expected = 0.5 * p * v + 0.3 * net_part + 0.2 * np.array([average[a] for a in ("nag", "none", "offer")])
    np.testing.assert_allclose(revenue, expected, rtol=1e-12)
    assert loaded.members[0].head is loaded.conversion and loaded.members[2].head is None
