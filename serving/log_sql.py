"""SQL and row encoding shared by the SQLite and PostgreSQL decision logs.

The statements are portable (``ON CONFLICT DO NOTHING``, ``CASE``, ``CAST``) and written with ``?``
placeholders; the PostgreSQL backend rewrites them to ``%s``. JSON is encoded here, once, for both backends,
so a record reads back the same whichever backend stored it (up to key order: JSONB sorts object keys).
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id", "request_id", "customer_id", "created_at", "channel", "action", "action_channel",
    "probability", "explored", "control", "degraded", "reason", "model_version", "ruleset_version",
    "catalog_version", "feature_service", "features", "scores", "rule_hits", "response",
)  # fmt: skip
FEEDBACK_COLUMNS: tuple[str, ...] = (
    "feedback_id", "decision_id", "customer_id", "created_at", "type", "revenue", "payload",
)  # fmt: skip
JSON_COLUMNS = ("features", "scores", "rule_hits", "response")
BOOL_COLUMNS = ("explored", "control", "degraded")


def statements(d: str, f: str) -> dict[str, str]:
    """Every statement the log runs, for decision table ``d`` and feedback table ``f``."""
    cols = ", ".join(DECISION_COLUMNS)
    select = f"SELECT {cols} FROM {d} WHERE "
    served = "d.customer_id = ? AND d.created_at >= ? AND NOT d.control AND d.action_channel IS NOT NULL"
    flag = "MAX(CASE WHEN type = '{}' THEN 1 ELSE 0 END)"
    return {
        "insert_decision": f"INSERT INTO {d} ({cols}) VALUES ({', '.join('?' * len(DECISION_COLUMNS))}) "
        "ON CONFLICT DO NOTHING",
        "by_id": select + "decision_id = ?",
        "by_request": select + "request_id = ?",
        "owner": f"SELECT customer_id FROM {d} WHERE decision_id = ?",
        "insert_feedback": f"INSERT INTO {f} ({', '.join(FEEDBACK_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(FEEDBACK_COLUMNS))}) ON CONFLICT DO NOTHING",
        # Sends, then each kind of feedback on them at its first arrival; one round trip.
        "contacts": _contacts(d, f, served, delivered_only=False),
        # Only decisions the caller confirmed with feedback count as contacts (the service's default).
        "contacts_delivered": _contacts(d, f, served, delivered_only=True),
        "training": "SELECT d.decision_id, d.request_id, d.customer_id, d.created_at, d.channel, d.action, "
        "d.action_channel, d.probability, d.explored, d.control, d.degraded, d.model_version, d.ruleset_version, "
        "d.catalog_version, d.feature_service, d.features, COALESCE(a.converted, 0), COALESCE(a.clicked, 0), "
        "COALESCE(a.impressed, 0), COALESCE(a.dismissed, 0), COALESCE(a.revenue, 0), COALESCE(a.n, 0) "
        f"FROM {d} d LEFT JOIN (SELECT decision_id, {flag.format('conversion')} AS converted, "
        f"{flag.format('click')} AS clicked, {flag.format('impression')} AS impressed, "
        f"{flag.format('dismissed')} AS dismissed, SUM(revenue) AS revenue, COUNT(*) AS n "
        f"FROM {f} GROUP BY decision_id) a ON a.decision_id = d.decision_id "
        "WHERE d.created_at >= ? AND d.created_at < ? ORDER BY d.created_at, d.decision_id",
        "counts": f"SELECT (SELECT COUNT(*) FROM {d}), (SELECT COUNT(*) FROM {f})",
        # Decisions in a window, newest first, one page after a (created_at, decision_id) cursor, with their
        # feedback aggregated (rule simulation replays them). The page is cut first (index range on created_at),
        # so feedback is looked up for the page's rows only.
        "window": "SELECT " + ", ".join(f"w.{c}" for c in DECISION_COLUMNS) + ", "
        f"(SELECT COALESCE(SUM(x.revenue), 0) FROM {f} x WHERE x.decision_id = w.decision_id "
        "AND x.type = 'conversion'), "
        f"(SELECT COUNT(*) FROM {f} x WHERE x.decision_id = w.decision_id AND x.type = 'conversion'), "
        f"(SELECT COUNT(*) FROM {f} x WHERE x.decision_id = w.decision_id) "
        f"FROM (SELECT {cols} FROM {d} WHERE created_at >= ? AND created_at <= ? "
        "AND (created_at < ? OR decision_id < ?) ORDER BY created_at DESC, decision_id DESC LIMIT ?) w "
        "ORDER BY w.created_at DESC, w.decision_id DESC",
    }


def encode_decision(v: dict[str, Any]) -> tuple[Any, ...]:
    """A record's ``__dict__`` as row values in column order; numbers coerced so NumPy scalars bind."""
    return (v["decision_id"], v["request_id"], int(v["customer_id"]), float(v["created_at"]), v["channel"],
            v["action"], v["action_channel"], float(v["probability"]), bool(v["explored"]), bool(v["control"]),
            bool(v["degraded"]), v["reason"], v["model_version"], v["ruleset_version"], v["catalog_version"],
            v["feature_service"], dumps(v["features"]), dumps(v["scores"]), dumps(v["rule_hits"]),
            dumps(v["response"]))  # fmt: skip


def decode_decision(row: Any) -> dict[str, Any]:
    values = dict(zip(DECISION_COLUMNS, row, strict=True))
    for name in JSON_COLUMNS:
        values[name] = loads(values[name])
    for name in BOOL_COLUMNS:
        values[name] = bool(values[name])
    values["customer_id"] = int(values["customer_id"])
    return values


def dumps(obj: Any) -> str:
    """Compact JSON; NumPy scalars become numbers and non-finite floats null (JSON, and JSONB, have no NaN)."""
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=_default)
    except ValueError:
        return json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False, default=_default)


def loads(value: Any) -> Any:
    """SQLite returns JSON text; psycopg has already parsed JSONB."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def flatten(obj: Any, prefix: str, out: dict[str, Any], reserved: set[str]) -> None:
    """Nested feature maps as ``a.b`` columns; a name clashing with a reserved column becomes ``feature.<name>``."""
    for key, value in (obj or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flatten(value, f"{name}.", out, reserved)
        else:
            out[f"feature.{name}" if name in reserved else name] = value


def _default(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:  # NumPy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    raise TypeError(f"cannot store {type(obj).__name__} in the decision log as JSON")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays
        return _finite(obj.tolist())
    return obj


def _contacts(d: str, f: str, served: str, delivered_only: bool) -> str:
    confirmed = f"AND EXISTS (SELECT 1 FROM {f} x WHERE x.decision_id = d.decision_id) " if delivered_only else ""
    return (
        "SELECT d.created_at, d.action, d.action_channel, 'sent', CAST(NULL AS DOUBLE PRECISION) "
        f"FROM {d} d WHERE {served} AND d.action <> ? {confirmed}UNION ALL "
        "SELECT d.created_at, d.action, d.action_channel, f.type, MIN(f.created_at) "
        f"FROM {f} f JOIN {d} d ON d.decision_id = f.decision_id WHERE f.customer_id = ? AND {served} "
        "AND d.action <> ? "
        "GROUP BY d.decision_id, d.created_at, d.action, d.action_channel, f.type"
    )
