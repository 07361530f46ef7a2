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

from pydantic_core import to_json

from nextbest.core.ids import customer_key as _customer_key
from nextbest.io.decision_log.tables import DECISIONS, FEEDBACK

DECISION_COLUMNS: tuple[str, ...] = DECISIONS.stored()  # a record's fields, in insert order (tables.py)
FEEDBACK_COLUMNS: tuple[str, ...] = FEEDBACK.stored()
JSON_COLUMNS = ("features", "scores", "rule_hits", "response", "context")
#: What analytics and the decision explorer read per decision (no features or scores): metadata, the action
#: arbitration chose, rule hits and the feedback aggregated (flags per type, conversion events and revenue).
ACTIVITY_COLUMNS: tuple[str, ...] = (
    "decision_id", "customer_id", "created_at", "channel", "action", "action_channel", "probability", "explored",
    "control", "degraded", "reason", "model_version", "ruleset_version", "greedy_action", "rule_ids", "rule_hits",
    "impression", "click", "conversion", "dismissed", "orders", "revenue",
)  # fmt: skip
BOOL_COLUMNS = ("explored", "control", "degraded")
#: Listed in a stored response: its keys that live in other columns (the ``scores`` and ``rule_hits`` of the row),
#: restored when the row is read. The service stores a decision's lists once (serving/decision_output.py).
IN_COLUMNS = "_in_columns"


def statements(d: str, f: str) -> dict[str, str]:
    """Every statement the log runs, for decision table ``d`` and feedback table ``f``."""
    cols = ", ".join(DECISION_COLUMNS)
    select = f"SELECT {cols} FROM {d} WHERE "
    served = "d.customer_id = ? AND d.created_at >= ? AND NOT d.control AND d.action_channel IS NOT NULL"
    flag = "MAX(CASE WHEN type = '{}' THEN 1 ELSE 0 END)"
    return {
        "insert_decision": f"INSERT INTO {d} ({cols}, rule_ids, request_hash) "
        f"VALUES ({', '.join('?' * (len(DECISION_COLUMNS) + 2))}) ON CONFLICT DO NOTHING",
        "by_id": select + "decision_id = ?",
        "by_request": f"SELECT {cols}, request_hash FROM {d} WHERE request_id = ?",
        "owner": f"SELECT customer_id FROM {d} WHERE decision_id = ?",
        "insert_feedback": f"INSERT INTO {f} ({', '.join(FEEDBACK_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(FEEDBACK_COLUMNS))}) ON CONFLICT DO NOTHING",
        # Sends, then each kind of feedback on them at its first arrival; one round trip.
        "contacts": _contacts(d, f, served, delivered_only=False),
        # Only decisions the caller confirmed with feedback count as contacts (the service's default).
        "contacts_delivered": _contacts(d, f, served, delivered_only=True),
        # How many sends the customer has in the window, counting at most ? (an index range, stopped early): a
        # decision reads a short history row by row, a long one from the summaries (DecisionLog.history).
        "sends_probe": f"SELECT COUNT(*) FROM (SELECT 1 FROM {d} d WHERE {served} AND d.action <> ? LIMIT ?) s",
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
        # Analytics: one page of a window, oldest first after a (created_at, decision_id) cursor.
        "activity_window": _activity(
            d,
            f,
            "created_at >= ? AND created_at < ? AND (created_at > ? OR (created_at = ? AND decision_id > ?))",
            "created_at, decision_id",
        ),
        # The explorer: a customer's latest decisions.
        "activity_customer": _activity(d, f, "customer_id = ?", "created_at DESC, decision_id DESC"),
    }


def encode_decision(v: dict[str, Any]) -> tuple[Any, ...]:
    """A record's ``__dict__`` as row values in column order, then ``rule_ids`` and ``request_hash``; numbers
    coerced so NumPy scalars bind."""
    return (v["decision_id"], v["request_id"], customer_key(v["customer_id"]), float(v["created_at"]), v["channel"],
            v["action"], v["action_channel"], float(v["probability"]), bool(v["explored"]), bool(v["control"]),
            bool(v["degraded"]), v["reason"], v["model_version"], v["ruleset_version"], v["catalog_version"],
            v["feature_service"], dumps(v["features"]), dumps(v["scores"]), dumps(v["rule_hits"]),
            dumps(v["response"]), dumps(v.get("context") or {}), dumps(rule_ids(v["rule_hits"])),
            v.get("request_hash"))  # fmt: skip


def rule_ids(hits: list[dict[str, Any]] | None) -> tuple[list[str], list[str]]:
    """The ids of the rules in a decision's ``rule_hits``: those suppressing an action (one entry per suppressed
    action and rule, in the logged order) and the shadow-mode hits."""
    suppressed: list[str] = []
    shadow: list[str] = []
    for hit in hits or ():
        if "suppressed" in hit:
            suppressed.extend(hit["suppressed"].get("rule_ids", ()))
        elif "rule_id" in hit:
            shadow.append(hit["rule_id"])
    return suppressed, shadow


def decode_decision(row: Any) -> dict[str, Any]:
    """A row of ``DECISION_COLUMNS`` (and ``request_hash`` where the query reads it) as a record's fields."""
    n = len(DECISION_COLUMNS)
    values = dict(zip(DECISION_COLUMNS, row[:n], strict=True))
    if len(row) > n:
        values["request_hash"] = row[n]
    for name in JSON_COLUMNS:
        values[name] = loads(values[name])
    values["context"] = values["context"] or {}
    values["response"] = _full_response(values)
    for name in BOOL_COLUMNS:
        values[name] = bool(values[name])
    values["customer_id"] = customer_key(values["customer_id"])
    return values


def customer_key(value: Any) -> str:
    """A customer id as the log stores and returns it: the canonical string (rows of logs created before string
    ids, read from an INTEGER or BIGINT column, and records spooled by older versions come back the same way)."""
    return value if type(value) is str else _customer_key(value)


def _full_response(values: dict[str, Any]) -> Any:
    response = values["response"]
    if not isinstance(response, dict) or IN_COLUMNS not in response:
        return response
    out = dict(response)
    dropped, hits = out.pop(IN_COLUMNS), values["rule_hits"] or []
    if "candidates" in dropped:
        out["candidates"] = values["scores"]
    if "shadow" in dropped:
        out["shadow"] = [h for h in hits if "suppressed" not in h]
        out["suppressed"] = [h["suppressed"] for h in hits if "suppressed" in h]
    return out


def dumps(obj: Any) -> str:
    """Compact JSON; NumPy scalars become numbers and non-finite floats null (JSON, and JSONB, have no NaN).

    Encoded by pydantic-core (Rust, about 3x faster than ``json`` on a decision's scores: this is on the
    path of every decision); anything it cannot encode takes the ``json`` path, which names the bad type."""
    try:
        return to_json(obj, fallback=_default, inf_nan_mode="null").decode()
    except Exception:
        pass
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
        "SELECT d.created_at, d.action, d.action_channel, 'sent', CAST(NULL AS DOUBLE PRECISION), d.decision_id "
        f"FROM {d} d WHERE {served} AND d.action <> ? {confirmed}UNION ALL "
        "SELECT d.created_at, d.action, d.action_channel, f.type, MIN(f.created_at), d.decision_id "
        f"FROM {f} f JOIN {d} d ON d.decision_id = f.decision_id WHERE f.customer_id = ? AND {served} "
        "AND d.action <> ? "
        "GROUP BY d.decision_id, d.created_at, d.action, d.action_channel, f.type"
    )


def _activity(d: str, f: str, where: str, order: str) -> str:
    """``ACTIVITY_COLUMNS`` of the decisions matching ``where`` (first ``?`` rows in ``order``, the page cut
    first so feedback is aggregated for the page only). ``->>`` reads JSON text in SQLite and PostgreSQL alike."""
    cols = ("decision_id", "customer_id", "created_at", "channel", "action", "action_channel", "probability",
            "explored", "control", "degraded", "reason", "model_version", "ruleset_version")  # fmt: skip
    flag = "MAX(CASE WHEN x.type = '{}' THEN 1 ELSE 0 END)"
    page = (
        f"SELECT {', '.join(cols)}, response ->> 'greedy_action' AS greedy_action, rule_ids, "
        f"CASE WHEN rule_ids IS NULL THEN rule_hits END AS rule_hits FROM {d} WHERE {where} ORDER BY {order} LIMIT ?"
    )
    feedback = (
        f"SELECT x.decision_id, {flag.format('impression')} AS impression, {flag.format('click')} AS click, "
        f"{flag.format('conversion')} AS conversion, {flag.format('dismissed')} AS dismissed, "
        "SUM(CASE WHEN x.type = 'conversion' THEN 1 ELSE 0 END) AS orders, "
        "SUM(CASE WHEN x.type = 'conversion' THEN COALESCE(x.revenue, 0) ELSE 0 END) AS revenue "
        f"FROM {f} x JOIN w ON w.decision_id = x.decision_id GROUP BY x.decision_id"
    )
    out = ", ".join(f"w.{c}" for c in (*cols, "greedy_action", "rule_ids", "rule_hits"))
    sums = ", ".join(
        f"COALESCE(a.{c}, 0)" for c in ("impression", "click", "conversion", "dismissed", "orders", "revenue")
    )
    return (
        f"WITH w AS ({page}) SELECT {out}, {sums} FROM w LEFT JOIN ({feedback}) a ON a.decision_id = w.decision_id "
        f"ORDER BY {', '.join('w.' + o.strip() for o in order.split(','))}"
    )
