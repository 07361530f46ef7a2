"""Readiness: what is degraded and which versions are live, probed on every ``GET /ready`` (the online store
with one read, the decision log with a ping), with the details an operator needs and, without the API key,
only what is safe to show anyone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nextbest.serving.schemas import ReadinessResponse

if TYPE_CHECKING:
    from nextbest.serving.runtime import DecisionRuntime


SPOOL_ALERT = 0.8  # share of the spool's cap from which /ready reports it


def readiness(rt: DecisionRuntime, details: bool = True) -> ReadinessResponse:
    """What is degraded and which versions are live; without ``details`` (a caller without the API key),
    only the instance id and the state of each backend: no file paths, rule text or reload errors."""
    full = _full(rt)
    if details:
        return full
    safe = ("instance_id", "spooled", "decision_log", "online_store", "rule_count")
    return full.model_copy(
        update={
            "degraded": [f"{len(full.degraded)} problem(s); send the API key for details"] if full.degraded else [],
            "details": {k: full.details[k] for k in safe},
        }
    )


def _full(rt: DecisionRuntime) -> ReadinessResponse:
    degraded: list[str] = []
    store_ok = False
    if rt.backends.features is None:
        degraded.append(f"online store unavailable: {rt.backends.features_error}")
    elif problem := getattr(rt.backends.features, "key_problem", None):  # stand-ins in tests may lack it
        degraded.append(str(problem))
    else:
        try:  # one read of a customer id that never exists: a round trip to Redis, a query on SQLite
            rt.backends.features.read_one("0")
            store_ok = True
        except Exception as exc:
            degraded.append(f"online store unreachable: {type(exc).__name__}: {str(exc)[:200]}")
    components = rt.components
    loaded = components.model
    if loaded.model is None:
        degraded.append(loaded.error or "no model loaded")
    elif components.feature_service_error:  # a newer model refused: the reader serves another feature service
        degraded.append(components.feature_service_error)
    diff, gaps = components.catalog_diff, components.gaps
    try:
        log_ok = bool(rt.backends.log.ping())
    except Exception:
        log_ok = False
    if not log_ok:
        degraded.append("decision log unreachable: decisions are spooled locally")
    status = rt.components.policy_status
    policy = rt.components.policy
    if status.error:
        degraded.append(
            f"last rules/catalog reload rejected (serving ruleset {policy.ruleset.version}): {status.error}"
        )
    spooled = {kind: rt.spool.pending(kind) for kind in ("decisions", "feedback", "events")}
    for kind, n in spooled.items():
        rt.metrics.spooled.labels(kind).set(n)
    used, cap = rt.spool.size(), rt.spool.max_bytes
    rt.metrics.spool_bytes.set(used)
    if used >= SPOOL_ALERT * cap:
        degraded.append(
            f"local spool at {used / cap:.0%} of its cap ({cap:,} bytes): when full, decisions are served "
            "unrecorded (the control action) and events and feedback are refused (503)"
        )
    return ReadinessResponse(
        ready=True,
        degraded=degraded,
        model_version=loaded.version,
        ruleset_version=policy.ruleset.version,
        catalog_version=policy.catalog.content_hash,
        feature_service=components.feature_service,
        details={
            "instance_id": rt.settings.serving.instance_id,
            "model_source": loaded.source,
            "ruleset_loaded_at": status.loaded_at,
            "rules_reloads": status.reloads,
            "rules_rejected": status.rejected,
            "last_reload_error": status.error,
            "rule_count": policy.ruleset.rule_count,
            "spooled": spooled,
            "decision_log": log_ok,
            "online_store": store_ok,
            # The model's contract: a refused model, what the live catalog changes that the model tolerates,
            # and rules or model features the decision's features lack (logged once when they change).
            "model_refused": components.refused_model,
            "catalog_differences": list(diff.tolerated) if diff is not None else None,
            "feature_gaps": gaps.describe(components.features_label) or None,
            "feature_gap_details": gaps.as_dict() if gaps else None,
        },
    )
