"""The durable decision log (SQLite or PostgreSQL): every decision and every feedback event, the contact
history decisions read, and the rows retraining and analytics read. See ``base.py`` for the contract."""

from nextbest.io.decision_log.base import DEFAULT_PREFIX, FEW_SENDS, DecisionLog
from nextbest.io.decision_log.opening import open_decision_log
from nextbest.io.decision_log.records import (
    CONTACT_OUTCOME,
    FEEDBACK_TYPES,
    OUTCOME_ORDER,
    DecisionOutcome,
    DecisionRecord,
    FeedbackRecord,
    FeedbackType,
    one_line,
    redact,
)

__all__ = [
    "CONTACT_OUTCOME",
    "DEFAULT_PREFIX",
    "FEEDBACK_TYPES",
    "FEW_SENDS",
    "OUTCOME_ORDER",
    "DecisionLog",
    "DecisionOutcome",
    "DecisionRecord",
    "FeedbackRecord",
    "FeedbackType",
    "one_line",
    "open_decision_log",
    "redact",
]
