"""Online reads through a FeatureService, with freshness enforced.

Feast returns whatever the online store holds, however old. Here every view's event timestamp is checked
against its freshness limit (the view's ``ttl``): values of a stale view come back as missing (``None``),
and so do the request-time features computed from them. Callers see per-view status to explain why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nextbest.core.features import (
    ENTITY,
    FEATURE_SERVICES,
    ON_DEMAND_VIEW,
    REQUEST_FEATURES,
    REQUEST_TS,
    request_feature_views,
    service_features,
    view,
)

Status = Literal["fresh", "stale", "missing"]


@dataclass(frozen=True)
class CustomerFeatures:
    """One customer's features as served: stale or absent values are ``None``."""

    customer_id: int
    values: dict[str, Any]
    view_status: dict[str, Status]
    view_timestamps: dict[str, int | None]
    read_at: float

    @property
    def found(self) -> bool:
        """False when no view holds anything for this customer (an unknown customer)."""
        return any(s != "missing" for s in self.view_status.values())

    @property
    def stale_views(self) -> list[str]:
        return [v for v, s in self.view_status.items() if s == "stale"]

    @property
    def missing_views(self) -> list[str]:
        return [v for v, s in self.view_status.items() if s == "missing"]

    @property
    def complete(self) -> bool:
        return all(s == "fresh" for s in self.view_status.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "features": self.values,
            "views": {v: {"status": s, "event_ts": self.view_timestamps[v]} for v, s in self.view_status.items()},
        }


@dataclass
class OnlineFeatureReader:
    """Reads a FeatureService for many customers at once and masks stale views."""

    store: Any
    service_name: str
    clock: Callable[[], float] = time.time
    _service: Any = field(init=False, repr=False)
    _features: tuple[str, ...] = field(init=False, repr=False)
    _views: dict[str, tuple[str, ...]] = field(init=False, repr=False)
    _ttl: dict[str, float | None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._service = self.store.get_feature_service(self.service_name)
        self._features = service_features(self.service_name)
        wanted = set(self._features)
        members = [m for m in FEATURE_SERVICES[self.service_name] if m != ON_DEMAND_VIEW]
        self._views = {m: tuple(n for n in view(m).served_names if n in wanted) for m in members}
        self._ttl = {m: (view(m).ttl_days * 86_400.0 if view(m).ttl_days else None) for m in members}

    @property
    def features(self) -> tuple[str, ...]:
        return self._features

    def read(self, customer_ids: Sequence[int], now: float | None = None) -> list[CustomerFeatures]:
        at = self.clock() if now is None else now
        rows = [{ENTITY: int(c), REQUEST_TS: int(at)} for c in customer_ids]
        raw = self.store.get_online_features(features=self._service, entity_rows=rows).to_dict(
            include_event_timestamps=True
        )
        request_views = request_feature_views()
        out: list[CustomerFeatures] = []
        for i, customer in enumerate(customer_ids):
            status: dict[str, Status] = {}
            stamps: dict[str, int | None] = {}
            values: dict[str, Any] = {}
            for name, fields in self._views.items():
                ts = int(raw[f"{fields[0]}__ts"][i] or 0)
                present = ts > 0 and any(raw[f][i] is not None for f in fields)
                ttl = self._ttl[name]
                s: Status = "missing" if not present else ("stale" if ttl and at - ts > ttl else "fresh")
                status[name], stamps[name] = s, (ts if present else None)
                for f in fields:
                    values[f] = raw[f][i] if s == "fresh" else None
            for f in (r.name for r in REQUEST_FEATURES):
                if f in raw:
                    values[f] = raw[f][i] if status.get(request_views[f]) == "fresh" else None
            out.append(CustomerFeatures(int(customer), values, status, stamps, at))
        return out

    def read_one(self, customer_id: int, now: float | None = None) -> CustomerFeatures:
        return self.read([customer_id], now)[0]
