"""What callers write to the service besides decisions: real-time events and feedback, and the local spool
that keeps them (and decisions) while a backend is down, replayed in order when it is back.

Functions over the :class:`~nextbest.serving.runtime.DecisionRuntime` (its settings, backends, spool and
metrics), which exposes them as methods.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from nextbest.core.events import CustomerEvent, future_time_error, parse_event
from nextbest.errors import DataError, NotFoundError, UnavailableError
from nextbest.io.decision_log import DecisionRecord, FeedbackRecord
from nextbest.serving.schemas import EventResponse, FeedbackRequest, FeedbackResponse, FeedbackResult

if TYPE_CHECKING:
    from nextbest.serving.runtime import DecisionRuntime

log = logging.getLogger(__name__)


class FieldError(DataError):
    """Bad input the caller can fix; ``field`` names it (for a 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def spooled(rt: DecisionRuntime, kind: str, record: dict[str, Any]) -> bool:
    """Append to the spool; False (logged, counted) when it is full or the disk refuses the write."""
    try:
        rt.spool.append(kind, record)
        return True
    except Exception as exc:
        log.error("local spool refused a %s record (not recorded anywhere): %s", kind, exc)
        rt.metrics.unlogged.labels(kind).inc()
        return False


def push_event(rt: DecisionRuntime, event: CustomerEvent) -> EventResponse:
    """Apply an event to the online store; when the store is down, spool it (never lose it)."""
    from nextbest.core.events import EVENT_VIEW

    not_in_future(rt, event.timestamp)
    writer = rt.backends.events
    try:
        if writer is None:
            raise UnavailableError(f"online store unavailable: {rt.backends.features_error}")
        if rt.spool.has_pending("events"):  # events queued during an outage go first: order matters
            batch = rt.settings.serving.spool_replay_batch  # bounded: the rest replays in the background
            rt.spool.replay("events", lambda e: writer.push(parse_event(e)), limit=batch)
            if rt.spool.has_pending("events"):
                raise UnavailableError("online store: earlier events are still queued")
        result = writer.push(event)
        view, outcome = result.view, str(result.outcome)
    except Exception as exc:
        log.warning("online store write failed, spooling %s event: %s", event.type, exc)
        if not spooled(rt, "events", event.model_dump(mode="json")):
            raise UnavailableError(
                "online store unreachable and the local spool is full or unwritable: event not applied; retry"
            ) from None
        view, outcome = EVENT_VIEW[event.type], "queued"
    rt.metrics.events.labels(event.type, outcome).inc()
    return EventResponse(customer_id=event.customer_id, type=event.type, view=view, outcome=outcome)


def feedback(rt: DecisionRuntime, fb: FeedbackRequest) -> FeedbackResponse:
    """Record feedback on a logged decision. While the log is unreachable (or the decision still waits in
    the spool), the feedback is spooled and checked when it is replayed: ``queued: true``."""
    if fb.timestamp is not None:
        not_in_future(rt, fb.timestamp)
    ts = fb.timestamp.timestamp() if fb.timestamp else time.time()
    feedback_id = fb.feedback_id or content_id(fb)
    pending: dict[str, Any] = {"feedback_id": feedback_id, "decision_id": fb.decision_id, "customer_id": fb.customer_id,
               "created_at": ts, "type": fb.type, "revenue": fb.revenue, "payload": {"source": "api"}}  # fmt: skip
    try:
        stored = rt.backends.log.get(fb.decision_id)
    except Exception as exc:
        return _queue_feedback(rt, pending, exc)
    if stored is None:
        if rt.spool.has_pending("decisions"):  # its decision may be waiting to be logged
            return _queue_feedback(rt, pending, "decision not logged yet")
        raise NotFoundError(f"decision_id: decision {fb.decision_id} does not exist")
    if fb.customer_id is not None and fb.customer_id != stored.customer_id:
        raise FieldError("customer_id", f"decision {fb.decision_id} belongs to customer {stored.customer_id}")
    record = FeedbackRecord(**{**pending, "customer_id": stored.customer_id})
    try:
        recorded = rt.backends.log.record_feedback(record)
    except (NotFoundError, DataError):
        raise
    except Exception as exc:
        return _queue_feedback(rt, {**pending, "customer_id": stored.customer_id}, exc)
    rt.metrics.feedback.labels(fb.type, str(recorded).lower()).inc()
    return FeedbackResponse(decision_id=fb.decision_id, feedback_id=feedback_id, recorded=recorded)


def _queue_feedback(rt: DecisionRuntime, pending: dict[str, Any], why: object) -> FeedbackResponse:
    log.warning("feedback %s spooled: %s", pending["feedback_id"], why)
    if not spooled(rt, "feedback", pending):
        raise UnavailableError(
            "decision log unreachable and the local spool is full or unwritable: feedback not recorded; retry"
        )
    rt.metrics.feedback.labels(pending["type"], "queued").inc()
    return FeedbackResponse(
        decision_id=pending["decision_id"], feedback_id=pending["feedback_id"], recorded=False, queued=True
    )


def write_spooled_feedback(rt: DecisionRuntime, item: dict[str, Any]) -> None:
    """A spooled feedback, checked now as :func:`feedback` would have (unknown decision: set aside)."""
    stored = rt.backends.log.get(item["decision_id"])
    if stored is None:
        raise NotFoundError(f"decision {item['decision_id']} does not exist")
    if item.get("customer_id") not in (None, stored.customer_id):
        raise DataError(f"decision {item['decision_id']} belongs to customer {stored.customer_id}")
    rt.backends.log.record_feedback(FeedbackRecord(**{**item, "customer_id": stored.customer_id}))


def not_in_future(rt: DecisionRuntime, timestamp: datetime) -> None:
    """A 422 naming ``timestamp`` when it is further ahead than the allowed clock skew."""
    too_late = future_time_error(timestamp, time.time(), rt.settings.serving.max_clock_skew_s)
    if too_late:
        raise FieldError("timestamp", too_late)


def feedback_many(rt: DecisionRuntime, items: list[FeedbackRequest]) -> list[FeedbackResult]:
    """Each item on its own: one unknown decision does not reject the others."""
    out = []
    for item in items:
        try:
            r = feedback(rt, item)
            out.append(
                FeedbackResult(
                    decision_id=r.decision_id, feedback_id=r.feedback_id, recorded=r.recorded, queued=r.queued
                )
            )
        except (NotFoundError, DataError, UnavailableError) as exc:
            out.append(
                FeedbackResult(
                    decision_id=item.decision_id, feedback_id=item.feedback_id, recorded=False, error=str(exc)
                )
            )
    return out


def replay_spool(rt: DecisionRuntime) -> dict[str, int]:
    """Write spooled records to their backends again, one bounded batch per kind, in order (the service's
    replay thread calls it until nothing is left or a backend is still down; start-up calls it once).
    Feedback waits until every spooled decision is logged: it is checked against its decision."""
    batch, spool = rt.settings.serving.spool_replay_batch, rt.spool
    done = spool.replay("decisions", lambda d: rt.backends.log.record_decision(DecisionRecord(**d)), batch)
    feedback = 0
    if not spool.has_pending("decisions"):
        feedback = spool.replay("feedback", partial(write_spooled_feedback, rt), batch)
    events = 0
    writer = rt.backends.events
    if writer is not None:
        events = spool.replay("events", lambda e: writer.push(parse_event(e)), batch)
    return {"decisions": done, "feedback": feedback, "events": events}


def drain_spool(rt: DecisionRuntime, stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
    """:func:`replay_spool` until nothing more is written (all replayed, or a backend still down)."""
    total = {"decisions": 0, "feedback": 0, "events": 0}
    while not stop():
        step = replay_spool(rt)
        for kind, n in step.items():
            total[kind] += n
        if not any(step.values()):
            return total
    return total


def content_id(fb: FeedbackRequest) -> str:
    """The default ``feedback_id``: derived from what the feedback says (decision, type, revenue, and its time
    when the caller gave one), so a retry without an id is the same feedback, recorded once. Two purchases on
    one decision are told apart by their timestamps, or by ids of their own."""
    stated = [fb.decision_id, fb.type, fb.revenue, fb.timestamp.isoformat() if fb.timestamp else None]
    return "fb-" + hashlib.sha256(json.dumps(stated).encode()).hexdigest()[:32]
