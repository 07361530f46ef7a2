"""Real-time events into the online store: read the view's current row, apply the event (pure
:func:`nextbest.core.events.next_state`), push the new row. Late events are dropped, never written over newer
state; the monotonic online store guards the same invariant against concurrent writers. Event times are
compared and stored in whole seconds; events of the same second apply in the order they arrive.

The read, change and write of a row happen under a lock of that row: a thread lock within the process and the
online store's entity lock across processes and replicas (a file lock on SQLite, a lock key on Redis), so two
events for the same customer never both start from the same state.
"""

from __future__ import annotations

import threading
import zlib
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

from nextbest.core.events import EMPTY_STATE, EVENT_VIEW, CustomerEvent, next_state
from nextbest.core.features import ENTITY, view

Outcome = Literal["applied", "ignored_older", "unchanged"]


@dataclass(frozen=True)
class PushResult:
    view: str
    outcome: Outcome
    state: dict[str, Any] | None


class EventWriter:
    """Applies events to the online store, one row at a time (see the module docstring)."""

    def __init__(self, store: Any, stripes: int = 64) -> None:
        from feast.data_source import PushMode

        self._store = store
        self._mode = PushMode.ONLINE
        self._locks = [threading.Lock() for _ in range(stripes)]
        online = store._get_provider().online_store
        self._entity_lock = getattr(online, "entity_lock", None)  # nextbest's stores; Feast's own have none

    def _row_lock(self, view_name: str, customer_id: str) -> AbstractContextManager[Any]:
        if self._entity_lock is None:
            return nullcontext()
        return self._entity_lock(self._store.config, f"{view_name}:{customer_id}")  # type: ignore[no-any-return]

    def current(self, view_name: str, customer_id: str) -> tuple[dict[str, Any] | None, int | None]:
        """The stored row of a view (internal fields included) and its event time, or (None, None)."""
        names = view(view_name).feature_names
        raw = self._store.get_online_features(
            features=[f"{view_name}:{n}" for n in names], entity_rows=[{ENTITY: customer_id}]
        ).to_dict(include_event_timestamps=True)
        ts = int(raw[f"{names[0]}__ts"][0] or 0)
        if ts <= 0:
            return None, None
        return {n: raw[n][0] for n in names}, ts

    def push(self, event: CustomerEvent) -> PushResult:
        import pandas as pd

        view_name = EVENT_VIEW[event.type]
        spec = view(view_name)
        stripe = self._locks[zlib.crc32(event.customer_id.encode()) % len(self._locks)]
        with stripe, self._row_lock(view_name, event.customer_id):
            current, ts = self.current(view_name, event.customer_id)
            new = next_state(current, ts, event)
            if new is None:
                outcome: Outcome = "ignored_older" if ts is not None and event.ts < ts else "unchanged"
                return PushResult(view_name, outcome, current)
            row = {**EMPTY_STATE[view_name], **(current or {}), **new}
            # Whole seconds, the resolution the stored event time is read back at (and ``next_state`` compares):
            # with sub-second times, an event applied here could be refused by the store as older.
            at = event.timestamp.replace(microsecond=0)
            frame = pd.DataFrame([{ENTITY: event.customer_id, "event_timestamp": at, **row}])
            frame = frame.astype({f.name: _PANDAS[f.dtype] for f in spec.fields})
            assert spec.push_source is not None
            self._store.push(spec.push_source, frame, to=self._mode)
            return PushResult(view_name, "applied", row)


_PANDAS = {"int64": "Int64", "float64": "Float64", "string": "string"}
