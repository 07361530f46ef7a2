"""The response body is built without the response model; these hold its pieces to the model's formats."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from nextbest.core.decision import CandidateScore
from nextbest.serving.decision_output import _CANDIDATE_KEYS, iso_utc
from nextbest.serving.schemas import CandidateOut, DecisionResponse


@pytest.mark.parametrize("ts", [0.0, 1_764_562_314.0, 1_764_562_314.5, 1_764_562_314.123456, 1_764_562_314.000001])
def test_timestamps_are_formatted_as_pydantic_formats_aware_datetimes(ts: float) -> None:
    expected = TypeAdapter(datetime).dump_python(datetime.fromtimestamp(ts, UTC), mode="json")
    assert iso_utc(ts) == expected


def test_candidate_fields_are_the_contracts_in_its_order() -> None:
    assert _CANDIDATE_KEYS == CandidateScore._fields == tuple(CandidateOut.model_fields)


def test_body_and_record_are_rendered_from_one_served_decision() -> None:
    """The log record is not copied out of the body: both come from the ServedDecision; the record stores the
    lists once (scores, rule_hits) and its response reads back from the row equal to the body."""
    import numpy as np

    from nextbest.core.catalog import load_catalog
    from nextbest.core.decision import DecisionPolicy, DecisionRequest
    from nextbest.core.rules import load_ruleset
    from nextbest.core.served import ServedDecision
    from nextbest.io.decision_log.sql import IN_COLUMNS, decode_decision, encode_decision
    from nextbest.serving.decision_output import render, respond

    project = Path(__file__).resolve().parents[3]
    catalog = load_catalog(project / "catalog" / "actions.yaml")
    policy = DecisionPolicy(
        catalog, load_ruleset(project / "rules" / "guardrails.yaml", project / "rules" / "params" / "default.yaml")
    )
    cands = policy.candidates("email")
    request = DecisionRequest("C7", "email", 1_764_562_314, "d-1", cands, {"page": "cart"})
    features = {"email_opt_in": 0, "open_tickets": 1, "tier": "gold"}
    p = np.linspace(0.05, 0.3, len(cands))
    guarded = np.arange(len(cands)) == 1  # the model scored this one action by its average effect
    decision = policy.decide(request, features, None, p, p * 60.0, average_effect=guarded)
    assert decision.suppressed, "the consent and ticket rules suppress something: the record must carry it"
    served = ServedDecision.of(
        decision, catalog, customer_id="C7", channel="email", request_id="r-1", model_version="3",
        feature_service="nba_v1", decided_at=1_764_562_314.25, context={"page": "cart"}, request_hash="h",
    )  # fmt: skip
    body, record = render(served, features)
    assert body == respond(served)
    assert DecisionResponse.model_validate(body).model_dump(mode="json") == body
    assert {c["action"] for c in body["candidates"] if c["average_effect"]} == {cands[1]}
    assert record.scores == body["candidates"] and record.features == features
    assert [h["suppressed"] for h in record.rule_hits if "suppressed" in h] == body["suppressed"]
    assert record.action_channel == catalog.delivery_channel("email", decision.action)
    assert (record.model_version, record.feature_service, record.request_hash) == ("3", "nba_v1", "h")
    assert set(record.response) == set(body) - {"candidates", "suppressed", "shadow"} | {IN_COLUMNS}
    row = encode_decision(record.__dict__)[:-2]  # as stored, without rule_ids and request_hash
    assert decode_decision(row)["response"] == body  # read back whole
