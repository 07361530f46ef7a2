"""What the decision explorer and the analytics page show, assembled from the runtime and the decision log.

Everything here is read-only. The explorer's decision comes from :meth:`DecisionRuntime.preview`, which decides
exactly as ``/decide`` does but records nothing, so looking a customer up never becomes a contact, never counts
toward a frequency cap and never enters the measurements. The what-if replays that decision (its scores,
features and contact history) under a proposed ruleset with the rule simulation core, the code ``nextbest
rules simulate`` runs over the log.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nextbest.core.analytics import AnalyticsReport, DecisionFacts, compute, iso_seconds
from nextbest.core.catalog import ActionCatalog
from nextbest.core.decision import Decision, DecisionPolicy
from nextbest.core.features import FEATURE_SERVICES, ON_DEMAND_VIEW, REQUEST_FEATURES, request_feature_views, view
from nextbest.core.simulation import LoggedDecision, simulate
from nextbest.errors import ConfigError
from nextbest.io.decision_log import DecisionLog
from nextbest.serving.whatif_pool import job_for
from nextbest.settings import Settings

DAY = 86_400.0
MAX_RULES_BYTES = 256_000


# Analytics --------------------------------------------------------------------------------------------------
def facts(row: dict[str, Any], catalog: ActionCatalog) -> DecisionFacts:
    """One :meth:`DecisionLog.activity` row as analytics input."""
    action, greedy = row["action"], row.get("greedy_action") or row["action"]
    channel = None if action == catalog.control else row["action_channel"]
    if greedy == action:
        greedy_channel = channel
    else:  # the control is not a contact
        greedy_channel = None if greedy == catalog.control else catalog.delivery_channel(row["channel"], greedy)
    return DecisionFacts(
        created_at=row["created_at"], action=action, greedy_action=greedy, control=row["control"], channel=channel,
        greedy_channel=greedy_channel, degraded=row["degraded"], explored=row["explored"],
        impression=row["impression"], click=row["click"], converted=row["conversion"], orders=row["orders"],
        revenue=row["revenue"], suppressed_by=tuple(row["suppressed_by"]), shadow_hits=tuple(row["shadow_hits"]),
    )  # fmt: skip


def analytics(
    log: DecisionLog, catalog: ActionCatalog, since_days: float, *, until: float | None = None, level: float = 0.95
) -> AnalyticsReport:
    """The report over the last ``since_days`` days (ending now, or at ``until``)."""
    end = datetime.now(UTC).timestamp() if until is None else until
    start = end - since_days * DAY
    rows: Iterator[DecisionFacts] = (facts(r, catalog) for r in log.activity(start, end))
    return compute(rows, since=start, until=end, level=level, currency=catalog.currency)


# The explorer -----------------------------------------------------------------------------------------------
def _value(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and not math.isfinite(v) else v


def feature_views(runtime: Any, preview: Any) -> dict[str, Any]:
    """The customer's online features as the previewed decision read them, grouped by view, with each view's
    freshness (stale values are missing)."""
    row, now = preview.row, preview.now
    if row is None:
        return {"available": False, "error": preview.decision.reason}
    service = runtime.components.feature_service
    views = []
    for name in (m for m in FEATURE_SERVICES[service] if m != ON_DEMAND_VIEW):
        spec = view(name)
        ts = row.view_timestamps.get(name)
        names = [n for n in spec.served_names if n in row.values]
        views.append({
            "view": name, "status": row.view_status.get(name, "missing"), "event_time": iso_seconds(ts),
            "age_s": None if ts is None else max(0.0, now - ts),
            "freshness_limit_s": spec.ttl_days * DAY if spec.ttl_days else None,
            "features": {n: _value(row.values[n]) for n in names},
        })  # fmt: skip
    sources = request_feature_views()
    request = {f.name: _value(row.values[f.name]) for f in REQUEST_FEATURES if f.name in row.values}
    if request:
        views.append({
            "view": ON_DEMAND_VIEW, "status": "computed", "event_time": iso_seconds(now), "age_s": 0.0,
            "freshness_limit_s": None, "features": request,
            "note": "computed at request time; missing when its source view ("
            + ", ".join(sorted({sources[n] for n in request if n in sources})) + ") is stale or missing",
        })  # fmt: skip
    return {"available": True, "found": row.found, "complete": row.complete, "views": views}


def decision_dict(d: Decision) -> dict[str, Any]:
    return {
        "action": d.action, "greedy_action": d.greedy_action, "probability": d.probability, "explored": d.explored,
        "control": d.control, "degraded": d.degraded, "reason": d.reason, "ruleset_version": d.ruleset_version,
        "candidates": [c._asdict() for c in d.candidates],
        "suppressed": [{"action": s.action, "rule_ids": list(s.rule_ids), "messages": list(s.messages)}
                       for s in d.suppressed],
        "shadow": [{"rule_id": h.rule_id, "action": h.action_id, "message": h.message} for h in d.shadow],
    }  # fmt: skip


def recent(log: DecisionLog, customer_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """The customer's latest logged decisions with their outcomes."""
    out = []
    for r in log.customer_activity(customer_id, limit):
        suppressed = sorted(set(r["suppressed_by"]))
        outcome = next((k for k in ("conversion", "click", "impression", "dismissed") if r[k]), "no feedback")
        out.append({
            "decision_id": r["decision_id"], "decided_at": iso_seconds(r["created_at"]), "channel": r["channel"],
            "action": r["action"], "action_channel": r["action_channel"], "greedy_action": r["greedy_action"],
            "control": r["control"], "explored": r["explored"], "degraded": r["degraded"], "reason": r["reason"],
            "outcome": outcome, "orders": r["orders"], "revenue": r["revenue"], "suppressed_by": suppressed,
            "ruleset_version": r["ruleset_version"], "model_version": r["model_version"],
        })  # fmt: skip
    return out


def rule_files(settings: Settings) -> dict[str, Path]:
    """Rule files a what-if may name: ``*.yaml`` beside the live rule file and in its ``proposed/`` folder.
    Only these, by name: a caller can never make the service read an arbitrary path."""
    assert settings.rules_path is not None
    root = settings.rules_path.parent
    found = {p.name: p for p in sorted(root.glob("*.yaml"))}
    found.update({f"proposed/{p.name}": p for p in sorted((root / "proposed").glob("*.yaml"))})
    return found


def proposed_policy(settings: Settings, live: DecisionPolicy, name: str | None, text: str | None) -> DecisionPolicy:
    """The live policy with a proposed ruleset: a listed file by name, or pasted YAML (checked like ``nextbest
    rules check``; the live parameter file supplies the thresholds)."""
    from nextbest.core.features import all_fields
    from nextbest.core.rules import build_ruleset, load_params, load_ruleset, parse_yaml
    from nextbest.core.rules.check import check

    params = settings.rule_params_path
    if text is not None:
        if len(text.encode()) > MAX_RULES_BYTES:
            raise ConfigError(f"rules_yaml: at most {MAX_RULES_BYTES:,} bytes")
        try:
            document = parse_yaml(text, "rules_yaml")
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            raise ConfigError(f"rules_yaml: not valid YAML: {where}{getattr(exc, 'problem', None) or exc}") from None
        ruleset = build_ruleset(document, load_params(params) if params else {}, source="rules_yaml")
    else:
        files = rule_files(settings)
        if name not in files:
            raise ConfigError(f"rules_file: {name!r} is not one of {sorted(files)}")
        ruleset = load_ruleset(files[name], params)
    check(ruleset, all_fields(), live.catalog).raise_for_errors()
    return DecisionPolicy(live.catalog, ruleset, live.exploration, fields=all_fields())


def what_if(
    preview: Any, live: DecisionPolicy, proposed: DecisionPolicy, margin: float, scale: float | None = None
) -> dict[str, Any]:
    """The previewed decision replayed under ``proposed``: its full result, whether the choice changes, which
    rules fire under each ruleset, and the model's expected change in net value (the simulation core)."""
    d, request = preview.decision, preview.request
    if d.degraded:  # no model scores: only the rules can be shown
        rules = proposed.rules(request, preview.features, preview.history) if preview.features else None
        after = proposed.fallback(request, d.reason or "degraded", rules)
        return {"ruleset_version": proposed.ruleset.version, "decision": decision_dict(after), "changed": False,
                "rules": [], "value_change": None, "note": "degraded decision: no model scores to replay"}  # fmt: skip
    scores = {c.action: c for c in d.candidates}
    cands = tuple(a for a in request.candidates or () if a in scores)
    p = np.array([scores[a].propensity for a in cands])
    rev = p * np.array([scores[a].value for a in cands])
    row = LoggedDecision(
        customer_id=request.customer_id, channel=request.channel, now=request.now, candidates=cands, p_convert=p,
        expected_revenue=rev, features=preview.features, history=preview.history, context=request.context,
        margin=margin, decision_id=d.decision_id, greedy_action=d.greedy_action,
        costs=np.array([scores[a].cost for a in cands]),
    )  # fmt: skip
    report = simulate(live, proposed, [row], source="explorer", bootstrap=50)
    after = proposed.decide(
        replace(request, candidates=cands), preview.features, preview.history, p, rev, margin, scale
    )
    fired = [
        {"rule_id": r.rule_id, "live_mode": r.live_mode, "proposed_mode": r.proposed_mode,
         "live": bool(r.live_hits), "proposed": bool(r.proposed_hits)}
        for r in report.rules if r.live_hits or r.proposed_hits or r.live_mode != r.proposed_mode
    ]  # fmt: skip
    change = report.change["model"]
    return {
        "ruleset_version": proposed.ruleset.version,
        "live_ruleset_version": live.ruleset.version,
        "decision": decision_dict(after),
        "changed": report.changed > 0,
        "live_action": d.greedy_action,
        "proposed_action": after.greedy_action,
        "rules": fired,
        "value_change": {"value": change.value, "basis": "model: expected net value, proposed minus live"},
        "currency": live.catalog.currency,
    }


def explore(runtime: Any, req: Any, whatif: tuple[str | None, str | None] | None = None) -> dict[str, Any]:
    """Everything the explorer page shows for one customer and channel (``req`` is a ``DecideRequest``)."""
    preview = runtime.preview(req)
    live = runtime.components.policy
    loaded = runtime.components.model
    out: dict[str, Any] = {
        "lookup_id": uuid.uuid4().hex,
        "customer_id": req.customer_id,
        "channel": req.channel,
        "as_of": iso_seconds(preview.now),
        "recorded": False,
        "features": feature_views(runtime, preview),
        "contact_history": {k: v for k, v in (preview.history or {}).items() if v},
        "decision": {**decision_dict(preview.decision), "model_version": preview.response.model_version},
        "currency": live.catalog.currency,
    }
    try:
        out["recent"] = recent(runtime.backends.log, req.customer_id)
    except Exception as exc:
        out["recent"], out["recent_error"] = [], f"decision log unavailable: {type(exc).__name__}"
    if whatif is not None:
        margin = float(loaded.model.decision_margin) if loaded.model is not None else 0.0
        scale = loaded.model.value_scale if loaded.model is not None else None
        job = job_for(runtime, preview, whatif, margin, scale)
        out["whatif"] = runtime.whatif_pool.run(job, runtime.settings.serving.whatif_timeout_s)
    return out
