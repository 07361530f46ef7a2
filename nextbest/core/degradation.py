"""When a decision cannot use the model, and why: the fallback policy as a pure function of what serving
gathered (the feature read, the model, the candidates it can score). Serving gathers and reports; the choice
of fallback, its precedence and its reason live here, shared by every decision path and unit-tested.

Precedence: the online store (unreachable or failing), then the customer (unknown: no view holds anything),
then freshness (a stale or missing view), then the model (none loaded, or it cannot score the control
action). A degraded decision serves the catalog's control action (:meth:`DecisionPolicy.fallback`); rules
are still evaluated, for the record, when the customer's features are known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Cause = Literal["store", "unknown", "stale", "model"]
ViewStatus = Literal["fresh", "stale", "missing"]


@dataclass(frozen=True)
class Degradation:
    cause: Cause
    reason: str  # what the response and the log say
    with_rules: bool  # the customer's features are known: evaluate the rules for the record


@dataclass(frozen=True)
class DecisionInputs:
    """What serving gathered for one decision. ``store_error``: why the features could not be read (None when
    they were); ``view_status``: each feature view's status for the customer (empty when not read)."""

    customer_id: str | int
    store_error: str | None = None
    view_status: Mapping[str, ViewStatus] | None = None
    model_loaded: bool = True
    model_error: str | None = None
    control_scorable: bool = True


def degradation(inputs: DecisionInputs) -> Degradation | None:
    """The fallback to serve, or None when the model decides."""
    if inputs.store_error is not None:
        return Degradation("store", f"online store unavailable: {inputs.store_error}", with_rules=False)
    status = inputs.view_status or {}
    if not any(s != "missing" for s in status.values()):
        return Degradation("unknown", f"unknown customer {inputs.customer_id}: no features", with_rules=False)
    not_fresh = [f"{view} ({s})" for view, s in status.items() if s != "fresh"]
    if not_fresh:
        return Degradation("stale", f"stale or missing features: {', '.join(not_fresh)}", with_rules=True)
    if not inputs.model_loaded:
        return Degradation("model", inputs.model_error or "no model loaded", with_rules=True)
    if not inputs.control_scorable:
        return Degradation("model", "the model cannot score the control action", with_rules=False)
    return None
