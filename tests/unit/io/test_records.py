"""Helpers of the decision log's records (nextbest/io/decision_log/records.py)."""

from __future__ import annotations


def test_redact_hides_passwords_and_leaves_other_urls_as_given() -> None:
    from nextbest.io.decision_log import redact

    assert redact("sqlite:////tmp/home/decisions.db") == "sqlite:////tmp/home/decisions.db"
    assert redact("postgresql://app:s3cret@db:5432/log") == "postgresql://app:***@db:5432/log"
    assert redact("postgresql://app@db/log?password=s3cret&sslmode=require") == (
        "postgresql://app@db/log?password=%2A%2A%2A&sslmode=require"
    )
