"""Response models of the explorer's and analytics' data endpoints and of ``/admin/reload``: the published
OpenAPI contract of what those endpoints answer.

The endpoints build their bodies as plain dicts (:mod:`nextbest.serving.explorer_data`, the runtime); these
models describe them, so the document is exact and the contract test (schemathesis against a live service)
holds every body to it. Open-ended parts (feature values, contact history) are typed as JSON values.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nextbest.serving.schemas import CandidateOut, SuppressionOut

#: A feature value as the explorer shows it (missing or stale: null).
JsonScalar = str | int | float | bool | None


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# /admin/reload ----------------------------------------------------------------------------------------------
class RulesReload(_Out):
    reloaded: bool = Field(description="A new catalog or ruleset went live.")
    error: str | None = Field(description="Why the files on disk were rejected (the last good ones stay live).")
    ruleset_version: str


class ModelReload(_Out):
    reloaded: bool = Field(description="A new model went live.")
    error: str | None = Field(description="Why the model offered was refused (the live one stays).")
    version: str | None


class ReloadResponse(_Out):
    rules: RulesReload
    model: ModelReload


# /explorer/meta ---------------------------------------------------------------------------------------------
class ExplorerMeta(_Out):
    channels: list[str] = Field(description="`any` and the catalog's channels.")
    actions: list[str] = Field(description="The catalog's action ids.")
    ruleset_version: str
    rule_files: list[str] = Field(description="Rule files a what-if can name (`rules_file`).")
    model_version: str | None
    currency: str


# /explorer/lookup -------------------------------------------------------------------------------------------
class FeatureView(_Out):
    view: str
    status: str = Field(description="`fresh`, `stale`, `missing`, or `computed` (request-time features).")
    event_time: str | None = Field(description="ISO 8601 UTC time of the view's row.")
    age_s: float | None
    freshness_limit_s: float | None
    features: dict[str, JsonScalar]
    note: str | None = None


class CustomerFeatures(_Out):
    available: bool = Field(description="False when the online store could not be read (`error` says why).")
    error: str | None = None
    found: bool | None = None
    complete: bool | None = None
    views: list[FeatureView] = Field(default_factory=list)


class ShadowHit(_Out):
    rule_id: str
    action: str
    message: str


class ExplorerDecision(_Out):
    action: str
    greedy_action: str
    probability: float
    explored: bool
    control: bool
    degraded: bool
    reason: str | None
    ruleset_version: str
    candidates: list[CandidateOut]
    suppressed: list[SuppressionOut]
    shadow: list[ShadowHit]
    model_version: str | None = Field(None, description="Present on the looked-up decision, not on a what-if's.")


class RecentDecision(_Out):
    decision_id: str
    decided_at: str | None
    channel: str
    action: str
    action_channel: str | None
    greedy_action: str | None
    control: bool
    explored: bool
    degraded: bool
    reason: str | None
    outcome: Literal["conversion", "click", "impression", "dismissed", "no feedback"]
    orders: int
    revenue: float
    suppressed_by: list[str]
    ruleset_version: str | None
    model_version: str | None


class WhatIfRule(_Out):
    rule_id: str
    live_mode: str = Field(description="`enforce`, `shadow`, `off`, or `absent` from the ruleset.")
    proposed_mode: str
    live: bool = Field(description="The rule fires under the live ruleset.")
    proposed: bool


class ValueChange(_Out):
    value: float | None
    basis: str


class WhatIfResult(_Out):
    ruleset_version: str = Field(description="The proposed ruleset's version.")
    decision: ExplorerDecision
    changed: bool
    rules: list[WhatIfRule]
    value_change: ValueChange | None
    note: str | None = None
    live_ruleset_version: str | None = None
    live_action: str | None = None
    proposed_action: str | None = None
    currency: str | None = None


class LookupResponse(_Out):
    lookup_id: str
    customer_id: str
    channel: str
    as_of: str | None
    recorded: Literal[False] = Field(description="Always false: a lookup is never a decision, never a contact.")
    features: CustomerFeatures
    contact_history: dict[str, Any]
    decision: ExplorerDecision
    currency: str
    recent: list[RecentDecision] = Field(description="The customer's latest logged decisions, newest first.")
    recent_error: str | None = None
    whatif: WhatIfResult | None = None


# /analytics/data --------------------------------------------------------------------------------------------
class Window(_Out):
    since: str | None
    until: str | None
    days: float


class Tally(_Out):
    decisions: int
    impressions: int
    clicks: int
    conversions: int
    orders: int
    revenue: float
    ctr: float | None
    conversion_rate: float | None
    aov: float | None
    revenue_per_decision: float | None


class Totals(_Out):
    decisions: int
    treated: int
    control: int
    control_share: float | None
    degraded: int
    degraded_rate: float | None
    explored: int
    explored_rate: float | None
    skipped_rows: int
    served: Tally
    control_group: Tally


class Lift(_Out):
    """Treated minus control mean per decision with its interval; null where not estimable (`note` says why)."""

    metric: str
    treated: float | None
    control: float | None
    value: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    relative: float | None
    relative_low: float | None
    relative_high: float | None
    n_treated: int
    n_control: int
    level: float
    note: str | None


class Lifts(_Out):
    revenue: Lift
    conversion: Lift


class IncrementalRevenue(_Out):
    value: float | None
    ci_low: float | None
    ci_high: float | None


class ActionRow(Tally):
    action: str
    channel: str | None
    policy_decisions: int
    control_decisions: int
    lift: Lifts


class DayRow(_Out):
    day: str
    served: Tally
    control: Tally
    degraded: int
    decisions: int
    lift: Lifts


class RuleRow(_Out):
    rule_id: str
    suppressed: int
    shadow: int
    suppressed_rate: float | None
    shadow_rate: float | None


class AnalyticsResponse(_Out):
    window: Window
    level: float
    currency: str
    totals: Totals
    lift: Lifts
    incremental_revenue: IncrementalRevenue
    actions: list[ActionRow]
    daily: list[DayRow]
    rules: list[RuleRow]
    seconds: float = Field(description="How long the report took.")
