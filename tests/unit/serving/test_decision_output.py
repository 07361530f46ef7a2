"""The response body is built without the response model; these hold its pieces to the model's formats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter

from nextbest.core.decision import CandidateScore
from nextbest.serving.decision_output import _CANDIDATE_KEYS, iso_utc
from nextbest.serving.schemas import CandidateOut


@pytest.mark.parametrize("ts", [0.0, 1_764_562_314.0, 1_764_562_314.5, 1_764_562_314.123456, 1_764_562_314.000001])
def test_timestamps_are_formatted_as_pydantic_formats_aware_datetimes(ts: float) -> None:
    expected = TypeAdapter(datetime).dump_python(datetime.fromtimestamp(ts, UTC), mode="json")
    assert iso_utc(ts) == expected


def test_candidate_fields_are_the_contracts_in_its_order() -> None:
    assert _CANDIDATE_KEYS == CandidateScore._fields == tuple(CandidateOut.model_fields)
