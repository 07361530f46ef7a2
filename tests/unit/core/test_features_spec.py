from __future__ import annotations

import numpy as np

from nextbest.core.features import (
    NON_MODEL_FEATURES,
    categorical_features,
    model_features,
    request_feature_views,
    request_time_features,
    service_features,
)


def test_service_hides_internal_fields_and_models_skip_raw_timestamps() -> None:
    served = service_features("nba_v1")
    assert "open_ticket_ids" not in served
    assert "open_tickets" in served and "days_since_last_order" in served
    assert not set(model_features()) & NON_MODEL_FEATURES
    assert set(categorical_features()) == {"region", "tier"}
    assert len(served) == len(set(served))


def test_request_time_features_handle_missing_and_future() -> None:
    out = request_time_features(
        {
            "signup_ts": [0, None],
            "last_order_ts": [86_400, 300_000],
            "last_cart_abandoned_ts": None,
            "last_ticket_opened_ts": [None, None],
            "last_contact_ts": [0, 0],
        },
        np.array([172_800, 172_800]),
    )
    assert out["tenure_days"][0] == 2.0 and np.isnan(out["tenure_days"][1])
    assert out["days_since_last_order"].tolist() == [1.0, 0.0]  # an input after the request clamps to 0
    assert np.isnan(out["hours_since_cart_abandoned"]).all()
    assert request_feature_views()["days_since_ticket_opened"] == "service_tickets"
