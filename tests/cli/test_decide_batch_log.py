"""An outbound campaign is decided like ``/decide``: ``nextbest decide-batch`` reads each customer's contact history
from the decision log (a customer at the weekly e-mail cap gets no e-mail from a batch either) and records every
decision there (so ``/feedback`` finds a batch decision, and its sends count toward later contact policies);
``--dry-run`` plans with the same history and records nothing."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from nextbest.core.catalog import ActionCatalog
from nextbest.io.decision_log import DecisionLog, DecisionRecord, FeedbackRecord, open_decision_log
from nextbest.settings import Settings
from tests.cli.test_cli_errors import run_cli

CUSTOMERS = [str(i) for i in range(1, 401)]


def email_contacts(log: DecisionLog, customer: str, action: str, n: int, now: float) -> None:
    """``n`` e-mails of ``action`` the customer saw (an impression each), the latest a day ago."""
    for k in range(n):
        sent = now - 86_400 * (1 + k)
        rec = DecisionRecord(
            decision_id=uuid.uuid4().hex, request_id=None, customer_id=customer, created_at=sent, channel="email",
            action=action, action_channel="email", probability=1.0, explored=False, control=False, degraded=False,
            reason=None, model_version="1", ruleset_version=None, catalog_version=None, feature_service="nba_v1",
        )  # fmt: skip
        log.record_decision(rec)
        fb = FeedbackRecord(uuid.uuid4().hex, rec.decision_id, customer, sent + 60, "impression")
        assert log.record_feedback(fb)


def batch(settings: Settings, tmp_path: Path, log_url: str, *extra: str) -> tuple[Any, pd.DataFrame]:
    inputs = tmp_path / "customers.csv"
    inputs.write_text("customer_id\n" + "\n".join(CUSTOMERS) + "\n")
    out = tmp_path / f"out-{uuid.uuid4().hex[:6]}.parquet"
    args = ["decide-batch", "--input", str(inputs), "--output", str(out), "--features", "feast", *extra]
    env = {"NEXTBEST_DATA_DIR": str(settings.data_dir), "NEXTBEST_DECISION_LOG_URL": log_url}
    result = run_cli(args, settings.home, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    return result, pd.read_parquet(out)


def test_decide_batch_applies_contact_policies_and_records_its_decisions(
    settings: Settings, feature_store: Any, champion: Any, catalog: ActionCatalog, tmp_path: Path
) -> None:
    log_url = f"sqlite:///{tmp_path / 'decisions.db'}"
    email_only = {a.id for a in catalog.actions if list(a.channels) == ["email"]}  # e-mail is how they reach anyone

    planned, plan = batch(settings, tmp_path, log_url, "--dry-run")
    assert "nothing recorded" in planned.stdout
    with open_decision_log(log_url) as log:
        assert log.counts()["decisions"] == 0  # a dry run records nothing
        emailed = plan.loc[plan["greedy_action"].isin(email_only), "customer_id"].tolist()
        assert len(emailed) >= 5, plan["greedy_action"].value_counts()
        capped = emailed[:5]
        now = time.time()
        for customer in capped:  # three e-mails seen this week: the weekly cap (email_max_7d: 3)
            email_contacts(log, customer, "email_promo", 3, now)

    result, decided = batch(settings, tmp_path, log_url)
    assert f"{len(CUSTOMERS):,} decisions recorded" in result.stdout, result.stdout
    at_cap = decided[decided["customer_id"].isin(capped)]
    assert len(at_cap) == 5
    assert not at_cap["action"].isin(email_only).any() and not at_cap["greedy_action"].isin(email_only).any()
    assert at_cap["suppressed"].str.contains("email_cap_7d").all(), at_cap["suppressed"].tolist()
    others = decided[~decided["customer_id"].isin(capped)]
    assert not others["suppressed"].str.contains("email_cap_7d").any()  # nobody else has e-mails in the log

    with open_decision_log(log_url) as log:
        assert log.counts()["decisions"] == len(CUSTOMERS) + 5 * 3
        first = decided.iloc[0]
        stored = log.get(first["decision_id"])
        assert stored is not None and stored.customer_id == first["customer_id"]
        assert stored.action == first["action"] and stored.probability == first["probability"]
        assert stored.features and stored.response["decision_id"] == first["decision_id"]

    # A batch decision takes feedback over HTTP like a real-time one (it was a 404 before batches were logged).
    from nextbest.serving.app import create_app
    from nextbest.serving.runtime import build_runtime

    runtime = build_runtime(settings.model_copy(update={"decision_log_url": log_url}))
    app = create_app()
    app.state.runtime = runtime
    with TestClient(app) as client:
        sent = decided[decided["action"] != catalog.control].iloc[0]
        body = {"decision_id": sent["decision_id"], "customer_id": sent["customer_id"], "type": "impression"}
        reply = client.post("/feedback", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["recorded"] is True
        unknown = client.post("/feedback", json={**body, "decision_id": "batch-1:nobody"})
        assert unknown.status_code == 404
    runtime.backends.log.close()

    # A re-run of the very same batch (same second, same ids) writes nothing twice.
    with open_decision_log(log_url) as log:
        before = log.counts()["decisions"]
        rows = [log.get(d) for d in decided["decision_id"].head(3)]
        assert log.record_decisions([r for r in rows if r is not None]) == 0
        assert log.counts()["decisions"] == before
