"""What a decision reads, gathered the same way for every path: the customer's features with their freshness,
contact history from the decision log, and the model's scores, then the core's fallback policy when any of them
is missing (nextbest/core/degradation.py).

One customer (``decide_one``: ``/decide``, ``/decide/batch``, the explorer) or a set of them (``online_rows``,
``feast_rows``, ``contact_histories``: ``decide-batch`` and rule simulation). Contact history has one window
and one notion of a contact (``ServingSettings.history_days`` and ``contacts_from``) everywhere, so an outbound
campaign applies the same frequency caps, cooldowns and ignore-suppression as a real-time decision for the
same customer. (Rule simulation replays logged decisions at their own past times: ``simulation_data``.)"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from nextbest.core.contact import DAY, History, HistoryBuilder
from nextbest.core.decision import Decision, DecisionRequest
from nextbest.core.degradation import DecisionInputs, ViewStatus, degradation
from nextbest.io.decision_log import DecisionLog
from nextbest.settings import ServingSettings

if TYPE_CHECKING:
    from nextbest.features.online import CustomerFeatures, OnlineFeatureReader
    from nextbest.serving.components import Snapshot

log = logging.getLogger(__name__)


def online_rows(
    reader: OnlineFeatureReader, ids: Sequence[str], now: float, chunk: int = 500
) -> list[CustomerFeatures]:
    """Many customers' online features (``CustomerFeatures``: values and each view's freshness), read in chunks.
    Raises when the store cannot be read."""
    rows: list[CustomerFeatures] = []
    for start in range(0, len(ids), chunk):
        rows.extend(reader.read(list(ids[start : start + chunk]), now))
    return rows


def feast_features(reader: OnlineFeatureReader, ids: list[str], now: float, chunk: int = 500) -> dict[str, Any]:
    """Online features for many customers, read in chunks; stale views come back missing."""
    return feast_rows(reader, ids, now, chunk)[0]


def feast_rows(
    reader: OnlineFeatureReader, ids: list[str], now: float, chunk: int = 500
) -> tuple[dict[str, Any], list[dict[str, ViewStatus]]]:
    """Online features for many customers, read in chunks, and each customer's view freshness (what
    ``run_batch`` turns into the fallback for an unknown customer or stale features, as ``/decide`` does)."""
    rows = online_rows(reader, ids, now, chunk)
    names = list(rows[0].values) if rows else []
    values = {n: np.array([r.values[n] for r in rows], dtype=object) for n in names}
    return values, [dict(r.view_status) for r in rows]


def contact_history(
    log: DecisionLog, builder: HistoryBuilder, customer_id: str | int, now: float, serving: ServingSettings
) -> History | None:
    """The customer's ``history`` map at ``now`` (None: no contact in the window): one bounded read, whatever the
    length of the customer's history (:meth:`DecisionLog.history`). Raises when the log cannot be read."""
    return log.history(
        customer_id,
        builder,
        now,
        since=now - serving.history_days * DAY,
        delivered_only=serving.contacts_from == "feedback",
    )


def contact_histories(
    log: DecisionLog,
    builder: HistoryBuilder,
    customer_ids: Sequence[str],
    now: float,
    serving: ServingSettings,
    progress: Callable[[int], None] | None = None,
) -> list[History]:
    """Each customer's ``history`` map at ``now``, "never contacted" where there is none (what rules read)."""
    empty = builder.empty()
    out: list[History] = []
    for start in range(0, len(customer_ids), 1000):
        part = customer_ids[start : start + 1000]
        out.extend(contact_history(log, builder, c, now, serving) or empty for c in part)
        if progress is not None:
            progress(len(part))
    return out


def decide_one(
    snap: Snapshot,
    request: DecisionRequest,
    now: float,
    reader: OnlineFeatureReader | None,
    features_error: str | None,
    read_history: Callable[[str | int], History | None],
) -> tuple[Decision, CustomerFeatures | None, History | None, str | None]:
    """One customer's decision from what serving can read: the decision, the feature row and contact history it
    read (None when not read: the store failed, or the customer is unknown) and the degradation cause (None when
    the model decided). ``reader``: the online feature reader (None when the store could not be opened, with
    ``features_error`` saying why)."""
    policy, loaded = snap.policy, snap.model
    row: CustomerFeatures | None = None
    store_error = None
    if reader is None:
        store_error = str(features_error)
    else:
        try:
            row = reader.read_one(request.customer_id, now)
        except Exception as exc:
            log.warning("online store read failed: %s", exc)
            store_error = type(exc).__name__
    found = row is not None and row.found
    history = read_history(request.customer_id) if found else None
    model = loaded.model
    scored = tuple(a for a in request.candidates or () if model is not None and a in model.action_ids)
    degraded = degradation(
        DecisionInputs(
            request.customer_id,
            store_error,
            None if row is None else row.view_status,
            model_loaded=model is not None,
            model_error=loaded.error,
            control_scorable=policy.catalog.control in scored,
        )
    )
    if degraded is not None:  # the fallback policy is the core's (nextbest/core/degradation.py)
        rules = policy.rules(request, row.values, history) if degraded.with_rules and row is not None else None
        return policy.fallback(request, degraded.reason, rules), row, history, degraded.cause
    assert model is not None and row is not None
    features = row.values
    if len(scored) != len(request.candidates or ()):
        request = DecisionRequest(
            request.customer_id, request.channel, request.now, request.decision_id, scored, request.context
        )
    scores = model.score(model.encoder.transform_records([features]), scored)
    average_effect = None if scores.average_effect is None else scores.average_effect[0]
    decision = policy.decide(
        request,
        features,
        history,
        scores.p_convert[0],
        scores.revenue[0],
        model.decision_margin,
        model.value_scale,
        average_effect,
    )
    return decision, row, history, None
