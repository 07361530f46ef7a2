"""What the customer features are: one declaration shared by the world simulator, the Feast repository,
training, rule checking and serving, so a feature's name, type and freshness limit live in one place.

Timestamps that request-time math needs are stored as integer Unix seconds (``*_ts``); the request-time
features are computed by :func:`request_time_features`, the one function both the Feast on-demand view and
the simulator call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

DType = Literal["int64", "float64", "string"]
ENTITY = "customer_id"
REQUEST_TS = "request_ts"
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class FieldSpec:
    name: str
    dtype: DType
    description: str
    internal: bool = False  # bookkeeping for real-time updates: stored online, never served to models or rules


@dataclass(frozen=True)
class ViewSpec:
    """A feature view. ``ttl_days`` is both the offline point-in-time horizon and the online freshness limit."""

    name: str
    table: str
    fields: tuple[FieldSpec, ...]
    ttl_days: float | None
    description: str
    push_source: str | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Every stored field, internal bookkeeping included."""
        return tuple(f.name for f in self.fields)

    @property
    def served_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if not f.internal)


def _f(name: str, dtype: DType, description: str, internal: bool = False) -> FieldSpec:
    return FieldSpec(name, dtype, description, internal)


# Weekly batch snapshots are fresh for 8 days (one missed batch makes them stale); event-driven views also get
# a weekly snapshot row, so the same limit applies to them.
WEEKLY_TTL_DAYS = 8.0

VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec(
        "customer_profile",
        "customer_profile",
        (
            _f("age", "int64", "Age in years"),
            _f("region", "string", "Sales region"),
            _f("tier", "string", "Loyalty tier: bronze, silver or gold"),
            _f("app_user", "int64", "1 when the customer has the mobile app installed"),
            _f("signup_ts", "int64", "Signup time, Unix seconds"),
        ),
        ttl_days=None,
        description="Slow-changing profile attributes.",
    ),
    ViewSpec(
        "order_rfm",
        "order_rfm",
        (
            _f("orders_30d", "int64", "Orders in the last 30 days"),
            _f("orders_90d", "int64", "Orders in the last 90 days"),
            _f("orders_180d", "int64", "Orders in the last 180 days"),
            _f("revenue_90d", "float64", "Revenue in the last 90 days"),
            _f("aov_180d", "float64", "Average order value over 180 days (null without orders)"),
            _f("coupon_order_share_180d", "float64", "Share of orders in 180 days that used a coupon"),
            _f("last_order_ts", "int64", "Last order time, Unix seconds (null without orders)"),
        ),
        ttl_days=WEEKLY_TTL_DAYS,
        description="Recency, frequency and monetary value from the order history (weekly batch).",
    ),
    ViewSpec(
        "engagement",
        "engagement",
        (
            _f("sessions_7d", "int64", "Web and app sessions in the last 7 days"),
            _f("sessions_30d", "int64", "Web and app sessions in the last 30 days"),
            _f("app_sessions_30d", "int64", "App sessions in the last 30 days"),
            _f("carts_abandoned_30d", "int64", "Carts abandoned in the last 30 days"),
            _f("email_open_rate_90d", "float64", "Share of emails opened in 90 days (null without emails)"),
        ),
        ttl_days=WEEKLY_TTL_DAYS,
        description="Browsing, cart and email engagement (weekly batch).",
    ),
    ViewSpec(
        "cart",
        "cart_state",
        (
            _f("cart_open", "int64", "1 when the last abandoned cart was not followed by an order"),
            _f("last_cart_abandoned_ts", "int64", "Last cart abandonment, Unix seconds"),
            _f("last_cart_value", "float64", "Value of the last abandoned cart"),
        ),
        ttl_days=WEEKLY_TTL_DAYS,
        description="Abandoned-cart state, updated in real time by cart events.",
        push_source="cart_events",
    ),
    ViewSpec(
        "service_tickets",
        "ticket_state",
        (
            _f("open_tickets", "int64", "Service tickets currently open"),
            _f("max_open_severity", "int64", "Highest severity among open tickets (0 when none)"),
            _f("last_ticket_opened_ts", "int64", "Last ticket opening, Unix seconds"),
            _f(
                "open_ticket_ids",
                "string",
                "Open tickets as 'id:severity;...' (for event updates)",
                internal=True,
            ),
        ),
        ttl_days=WEEKLY_TTL_DAYS,
        description="Open service tickets, updated in real time by ticket events.",
        push_source="ticket_events",
    ),
    ViewSpec(
        "consents",
        "consent_state",
        (
            _f("email_opt_in", "int64", "1 when email marketing is allowed"),
            _f("sms_opt_in", "int64", "1 when SMS marketing is allowed"),
            _f("push_opt_in", "int64", "1 when push notifications are allowed"),
        ),
        ttl_days=WEEKLY_TTL_DAYS,
        description="Channel consents, updated in real time by consent events.",
        push_source="consent_events",
    ),
    ViewSpec(
        "contact_history",
        "contact_history",
        (
            _f("contacts_7d", "int64", "Marketing contacts in the last 7 days, all channels"),
            _f("contacts_30d", "int64", "Marketing contacts in the last 30 days, all channels"),
            _f("email_contacts_30d", "int64", "Emails in the last 30 days"),
            _f("sms_contacts_30d", "int64", "SMS in the last 30 days"),
            _f("push_contacts_30d", "int64", "Push notifications in the last 30 days"),
            _f("last_contact_ts", "int64", "Last marketing contact, Unix seconds"),
        ),
        ttl_days=WEEKLY_TTL_DAYS,
        description="Marketing pressure from the contact history (weekly batch).",
    ),
)

REQUEST_FEATURES: tuple[FieldSpec, ...] = (
    _f("tenure_days", "float64", "Days since signup"),
    _f("days_since_last_order", "float64", "Days since the last order (null without orders)"),
    _f("hours_since_cart_abandoned", "float64", "Hours since the last abandoned cart (null without one)"),
    _f("days_since_ticket_opened", "float64", "Days since the last ticket was opened (null without one)"),
    _f("days_since_last_contact", "float64", "Days since the last marketing contact (null without one)"),
)
ON_DEMAND_VIEW = "request_time"

# Inputs of the request-time math: (output, input timestamp feature, unit in seconds).
_REQUEST_MATH: tuple[tuple[str, str, float], ...] = (
    ("tenure_days", "signup_ts", SECONDS_PER_DAY),
    ("days_since_last_order", "last_order_ts", SECONDS_PER_DAY),
    ("hours_since_cart_abandoned", "last_cart_abandoned_ts", 3_600.0),
    ("days_since_ticket_opened", "last_ticket_opened_ts", SECONDS_PER_DAY),
    ("days_since_last_contact", "last_contact_ts", SECONDS_PER_DAY),
)
REQUEST_INPUTS: tuple[str, ...] = tuple(src for _, src, _ in _REQUEST_MATH)

# One feature service per model version: the name is logged with every model trained through it.
FEATURE_SERVICES: dict[str, tuple[str, ...]] = {
    "nba_v1": (*tuple(v.name for v in VIEWS), ON_DEMAND_VIEW),
}
DEFAULT_FEATURE_SERVICE = "nba_v1"

# Raw timestamps are inputs to request-time math, not model inputs (absolute times do not generalise).
NON_MODEL_FEATURES = frozenset(REQUEST_INPUTS)


def request_time_features(values: Mapping[str, object], request_ts: object) -> dict[str, np.ndarray]:
    """Elapsed-time features at request time; missing inputs give NaN. Works on scalars and arrays."""
    now = np.asarray(request_ts, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for name, source, unit in _REQUEST_MATH:
        raw = values.get(source)
        if raw is None:
            raw = np.nan
        elif isinstance(raw, list):
            raw = [np.nan if v is None else v for v in raw]
        ts = np.asarray(raw, dtype=np.float64)
        out[name] = np.maximum(now - ts, 0.0) / unit
    return out


@cache
def request_feature_views() -> dict[str, str]:
    """Request-time feature -> the view its input timestamp comes from (stale input, missing output)."""
    owner = {f.name: v.name for v in VIEWS for f in v.fields}
    return {out: owner[src] for out, src, _ in _REQUEST_MATH}


@cache
def view(name: str) -> ViewSpec:
    for spec in VIEWS:
        if spec.name == name:
            return spec
    raise KeyError(name)


@cache
def all_fields() -> dict[str, FieldSpec]:
    """Every feature by name: view fields plus request-time features."""
    fields = {f.name: f for spec in VIEWS for f in spec.fields if not f.internal}
    fields.update({f.name: f for f in REQUEST_FEATURES})
    return fields


def service_features(service: str = DEFAULT_FEATURE_SERVICE) -> tuple[str, ...]:
    """Feature names a feature service returns, in a stable order."""
    names: list[str] = []
    for member in FEATURE_SERVICES[service]:
        if member == ON_DEMAND_VIEW:
            names.extend(f.name for f in REQUEST_FEATURES)
        else:
            names.extend(view(member).served_names)
    return tuple(names)


def model_features(service: str = DEFAULT_FEATURE_SERVICE) -> tuple[str, ...]:
    """The service's features that models take as input."""
    return tuple(n for n in service_features(service) if n not in NON_MODEL_FEATURES)


def categorical_features(service: str = DEFAULT_FEATURE_SERVICE) -> tuple[str, ...]:
    """String-typed model inputs (LightGBM treats them as categories)."""
    fields = all_fields()
    return tuple(n for n in model_features(service) if fields[n].dtype == "string")
