"""What the decision log stores and returns: a decision, a feedback event, a decision's aggregated outcome, the
feedback vocabulary, and two helpers for the backends' messages (shared by :mod:`decision_log` and both
backends; importable from ``nextbest.io.decision_log`` as before)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nextbest.io.decision_log.sql import customer_key

FeedbackType = Literal["impression", "click", "conversion", "dismissed"]
FEEDBACK_TYPES: tuple[str, ...] = ("impression", "click", "conversion", "dismissed")
#: Feedback type → contact-history outcome (``nextbest.core.contact.OUTCOMES``).
CONTACT_OUTCOME: dict[str, str] = {"impression": "impression", "click": "click", "conversion": "conversion",
                                   "dismissed": "ignored"}  # fmt: skip
#: Strongest first: the ``outcome`` column of :meth:`DecisionLog.training_rows` ("sent" when no feedback).
OUTCOME_ORDER: tuple[str, ...] = ("conversion", "click", "impression", "dismissed", "sent")


@dataclass(frozen=True)
class DecisionRecord:
    """One served decision as logged (not slotted: the service spools ``record.__dict__`` when the log is down)."""

    decision_id: str
    request_id: str | None
    customer_id: str  # canonical (string) form: nextbest.core.ids
    created_at: float  # Unix seconds
    channel: str
    action: str
    action_channel: str | None  # the channel the served action is delivered on; None = not a contact
    probability: float
    explored: bool
    control: bool
    degraded: bool
    reason: str | None
    model_version: str | None
    ruleset_version: str | None
    catalog_version: str | None
    feature_service: str | None
    features: dict[str, Any] = field(default_factory=dict)
    scores: list[dict[str, Any]] = field(default_factory=list)
    rule_hits: list[dict[str, Any]] = field(default_factory=list)
    response: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)  # the request's context, as rules saw it
    request_hash: str | None = None  # of the request a request_id came with (serving.decision_output.request_hash)

    def __post_init__(self) -> None:
        if type(self.customer_id) is not str:  # 42 (a caller's int, a spooled record of an older version) -> "42"
            object.__setattr__(self, "customer_id", customer_key(self.customer_id))


@dataclass(frozen=True)
class DecisionOutcome:
    """A decision's feedback, aggregated: conversions and their revenue, and feedback events of any type."""

    conversions: int
    revenue: float
    feedback: int


@dataclass(frozen=True)
class FeedbackRecord:
    feedback_id: str
    decision_id: str
    customer_id: str
    created_at: float  # Unix seconds
    type: FeedbackType
    revenue: float | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if type(self.customer_id) is not str:
            object.__setattr__(self, "customer_id", customer_key(self.customer_id))


def redact(url: str) -> str:
    """The URL without its password (in the user part or the query), for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None and "password=" not in parts.query:
        return url  # nothing to hide: as given (urlunsplit would turn sqlite:////abs into sqlite://abs)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if "password=" in query:
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception (drivers' messages span several lines)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
