"""The decision runtime behind every endpoint: features from the Feast online store, contact history from
the decision log, the champion model, the pure decision core, and a durable record of every decision.

Anything that can fail at run time (online store, model, decision log) degrades instead of failing: the
decision becomes the documented fallback (the control action, ``degraded: true`` with the reason) and
records that cannot reach the log go to a local spool that is replayed when the log is back.
"""

from __future__ import annotations

import atexit
import gc
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nextbest.core.decision import Decision, DecisionRequest
from nextbest.core.events import CustomerEvent
from nextbest.core.served import ServedDecision
from nextbest.errors import ConfigError, ConflictError
from nextbest.features.events import EventWriter
from nextbest.features.online import CustomerFeatures, OnlineFeatureReader
from nextbest.io.decision_log import DecisionLog, DecisionRecord
from nextbest.serving import intake
from nextbest.serving.components import Components, Snapshot
from nextbest.serving.decision_output import canonical, render, request_hash, respond, validated
from nextbest.serving.inputs import contact_history, decide_one
from nextbest.serving.intake import FieldError
from nextbest.serving.metrics import Metrics, NullMetrics
from nextbest.serving.readiness import readiness
from nextbest.serving.schemas import (
    DecideRequest,
    DecisionResponse,
    EventResponse,
    FeedbackRequest,
    FeedbackResponse,
    FeedbackResult,
    ReadinessResponse,
)
from nextbest.serving.spool import Spool
from nextbest.serving.whatif_pool import WhatIfPool
from nextbest.settings import Settings

log = logging.getLogger(__name__)
UNRECORDED = "not recorded: the decision log and the local spool are full or unwritable"


@dataclass
class Backends:
    """The runtime's stateful adapters (each may be None when it could not be opened)."""

    features: OnlineFeatureReader | None
    events: EventWriter | None
    log: DecisionLog
    features_error: str | None = None


@dataclass(frozen=True)
class Preview:
    """An unrecorded decision (:meth:`DecisionRuntime.preview`) with the inputs it saw."""

    request: DecisionRequest
    decision: Decision
    response: DecisionResponse
    features: dict[str, Any]  # the values the decision used ({} when it had none)
    row: CustomerFeatures | None  # the online read with freshness (None when the store could not be read)
    history: dict[str, Any] | None
    cause: str | None  # degradation cause, None when not degraded
    now: float


class DecisionRuntime:
    def __init__(self, settings: Settings, components: Components, backends: Backends, metrics: Metrics | None = None):
        self.settings = settings
        self.components = components
        self.backends = backends
        self.metrics = metrics or NullMetrics()
        self.spool = Spool(settings.home / "spool", max_bytes=settings.serving.spool_max_bytes)
        self.whatif_pool = WhatIfPool()  # the explorer's what-if: a child process, started at first use

    # Decisions ----------------------------------------------------------------------------------------------
    def decide(self, req: DecideRequest) -> DecisionResponse:
        """:meth:`decide_body` as the response model (for Python callers)."""
        return validated(self.decide_body(req))

    def decide_body(self, req: DecideRequest) -> dict[str, Any]:
        """Decide and record: the response body, JSON values in the contract's field order (what ``POST
        /decide`` serialises)."""
        started = time.perf_counter()
        if req.request_id is not None:
            replay = self._replay(req)
            if replay is not None:
                return replay
        snap = self.components.snapshot()  # one read: the whole request uses one policy and one model version
        now = time.time()
        request = self._request(snap, req, now)
        decision, row, _, cause = self._decide(snap, request, now)
        body, record = render(self._served(snap, req, decision, now), _used(row))
        stored, created, logged = self._store(record)
        if not created:  # another request with this request_id won the race: its decision, if it asked the same
            return self._replayed(req, stored)
        if not logged:  # a contact nobody recorded would escape caps, cooldowns and attribution: serve the control
            decision = snap.policy.fallback(request, UNRECORDED)
            body = {**respond(self._served(snap, req, decision, now)), "logged": False}
            cause = "unrecorded"
        self.metrics.decision(
            decision.action,
            req.channel,
            [r for s in decision.suppressed for r in s.rule_ids],
            [h.rule_id for h in decision.shadow],
            time.perf_counter() - started,
            cause,
        )
        return body

    def preview(self, req: DecideRequest) -> Preview:
        """The decision ``req`` would get now, computed as :meth:`decide` computes it but never recorded: no
        decision-log write, no spool, no metrics (the decision explorer and its what-if are read-only)."""
        snap = self.components.snapshot()
        now = time.time()
        request = self._request(snap, req, now)
        decision, row, history, cause = self._decide(snap, request, now)
        if row is None or not row.found:  # the explorer shows the log's contact history all the same
            history = self._history(snap, req.customer_id, now)
        response = validated(respond(self._served(snap, req, decision, now)))
        return Preview(request, decision, response, _used(row), row, history, cause, now)

    @staticmethod
    def _request(snap: Snapshot, req: DecideRequest, now: float) -> DecisionRequest:
        try:
            subset = tuple(req.candidates) if req.candidates is not None else None
            cands = snap.policy.candidates(req.channel, subset)
        except ConfigError as exc:
            raise FieldError("candidates" if "candidate" in str(exc) else "channel", str(exc)) from exc
        return DecisionRequest(req.customer_id, req.channel, int(now), uuid.uuid4().hex, cands, dict(req.context))

    def _decide(
        self, snap: Snapshot, request: DecisionRequest, now: float
    ) -> tuple[Decision, CustomerFeatures | None, dict[str, Any] | None, str | None]:
        """The decision, the feature row and contact history it read (None when not read: the store failed, or
        the customer is unknown) and the degradation cause (None when not degraded)."""
        return decide_one(
            snap,
            request,
            now,
            self.backends.features,
            self.backends.features_error,
            lambda customer_id: self._history(snap, customer_id, now),
        )

    def _history(self, snap: Snapshot, customer_id: str | int, now: float) -> dict[str, Any] | None:
        try:
            return contact_history(self.backends.log, snap.policy.history, customer_id, now, self.settings.serving)
        except Exception as exc:
            log.warning("contact history unavailable: %s", exc)
            return None

    def _replay(self, req: DecideRequest) -> dict[str, Any] | None:
        try:
            stored = self.backends.log.find_by_request(req.request_id)  # type: ignore[arg-type]
        except Exception as exc:
            log.warning("decision log lookup failed: %s", exc)
            return None
        if stored is None:
            return None
        return self._replayed(req, stored)

    @staticmethod
    def _replayed(req: DecideRequest, stored: DecisionRecord) -> dict[str, Any]:
        """The stored decision of ``req.request_id``, answered only to the same request: a request_id reused with
        another customer, channel, context or candidate list is a 409 (a guessed id must not pin a customer's
        decision). Rows of older versions have no request hash: checked by customer."""
        if stored.customer_id != req.customer_id:
            raise ConflictError("request_id", "already used for another customer's request")
        if stored.request_hash is not None and stored.request_hash != request_hash(req):
            raise ConflictError("request_id", "already used with a different request; use a new request_id")
        return canonical(stored.response, replayed=True)

    def _served(self, snap: Snapshot, req: DecideRequest, d: Decision, now: float) -> ServedDecision:
        """``d`` with its context: what the response body and the log record are rendered from."""
        loaded = snap.model
        return ServedDecision.of(
            d,
            snap.policy.catalog,
            customer_id=req.customer_id,
            channel=req.channel,
            request_id=req.request_id,
            model_version=loaded.version if not d.degraded or loaded.model is not None else None,
            feature_service=self.components.feature_service,
            decided_at=now,
            context=req.context,
            request_hash=None if req.request_id is None else request_hash(req),
        )

    def _store(self, record: DecisionRecord) -> tuple[DecisionRecord, bool, bool]:
        """``(stored, created, logged)``: the log's row for the record's request_id (``created`` False when an
        earlier request had it); ``logged`` False when the record could be neither logged nor spooled."""
        try:
            return (*self.backends.log.record_decision(record), True)
        except Exception as exc:
            log.error("decision log write failed, spooling decision %s: %s", record.decision_id, exc)
        return record, True, intake.spooled(self, "decisions", record.__dict__)

    def decide_many(self, requests: list[DecideRequest]) -> list[DecisionResponse]:
        return [self.decide(r) for r in requests]

    def decide_bodies(self, requests: list[DecideRequest]) -> list[dict[str, Any]]:
        return [self.decide_body(r) for r in requests]

    # Events and feedback (serving/intake.py) ----------------------------------------------------------------
    def push_event(self, event: CustomerEvent) -> EventResponse:
        """Apply an event to the online store; when the store is down, spool it (never lose it)."""
        return intake.push_event(self, event)

    def feedback(self, fb: FeedbackRequest) -> FeedbackResponse:
        """Record feedback on a logged decision, or spool it while the log is unreachable (``queued``)."""
        return intake.feedback(self, fb)

    def feedback_many(self, items: list[FeedbackRequest]) -> list[FeedbackResult]:
        """Each item on its own: one unknown decision does not reject the others."""
        return intake.feedback_many(self, items)

    # Operations ---------------------------------------------------------------------------------------------
    def readiness(self, details: bool = True) -> ReadinessResponse:
        """What is degraded and which versions are live (``serving.readiness``)."""
        return readiness(self, details)

    def reload(self, force: bool = False, include_model: bool = True) -> dict[str, Any]:
        """Reload rules and catalog (when their files changed, or always with ``force``) and the model."""
        swapped, error = self.components.reload_policy(force)
        if swapped or error:
            self.metrics.reloads.labels("rules", "rejected" if error else "applied").inc()
            if swapped:
                self.metrics.ruleset_info.set(self.components.policy_status.loaded_at)
        model_swapped, model_error = self.components.reload_model(force) if include_model else (False, None)
        if model_swapped or model_error:
            self.metrics.reloads.labels("model", "rejected" if model_error else "applied").inc()
        return {
            "rules": {"reloaded": swapped, "error": error, "ruleset_version": self.components.policy.ruleset.version},
            "model": {"reloaded": model_swapped, "error": model_error, "version": self.components.model.version},
        }

    def replay_spool(self) -> dict[str, int]:
        """One bounded batch per kind of spooled records written back (:func:`intake.replay_spool`)."""
        return intake.replay_spool(self)

    def drain_spool(self, stop: Callable[[], bool] = lambda: False) -> dict[str, int]:
        """Replayed until nothing more is written (:func:`intake.drain_spool`)."""
        return intake.drain_spool(self, stop)


def build_runtime(settings: Settings, metrics: Metrics | None = None) -> DecisionRuntime:
    """Open every backend from the settings. The online store may be down (decisions degrade); an invalid
    catalog or ruleset at start-up is fatal (there is no last good version yet)."""
    from nextbest.io.decision_log import open_decision_log

    components = Components(settings)
    features = events = None
    error = None
    try:
        from nextbest.features.store import open_store

        store = open_store(settings)
        # The live model's feature service: the model is the contract (Components.feature_service).
        features = OnlineFeatureReader(store, components.feature_service, path=settings.serving.feature_read)
        events = EventWriter(store)
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.error("online store unavailable at start-up: %s", error)
    assert settings.decision_log_url is not None
    backends = Backends(features, events, open_decision_log(settings.decision_log_url), error)
    runtime = DecisionRuntime(settings, components, backends, metrics)
    runtime.replay_spool()
    return runtime


def freeze_startup_objects() -> None:
    """Move everything built so far (Feast, MLflow, pandas, the model) out of the garbage collector's reach.

    Call once in a long-running server after :func:`build_runtime`. Without it, a full collection walks those
    ~400,000 objects every few thousand decisions and stalls the process for ~200 ms (the p99 of a busy
    service); frozen, a collection only walks what requests allocate. Unfrozen at exit, so the interpreter
    still finalizes them."""
    gc.collect()
    gc.freeze()
    atexit.register(gc.unfreeze)


def _used(row: CustomerFeatures | None) -> dict[str, Any]:
    """The feature values a decision used: none for an unknown customer or an unreadable store."""
    return row.values if row is not None and row.found else {}
