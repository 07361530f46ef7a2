"""Prometheus metrics of the decision service, exposed on BentoML's ``/metrics``.

``prometheus_client`` is imported when the service instance is built, inside the worker: BentoML sets the
multiprocess directory after the service module is imported, and metrics created earlier would be invisible.
"""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    """Decisions per action, suppressions per rule, latency, degraded decisions, events, feedback, reloads."""

    def __init__(self, namespace: str = "nextbest") -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.decisions = Counter(f"{namespace}_decisions", "Decisions served", ["action", "channel"])
        self.suppressions = Counter(f"{namespace}_suppressions", "Actions suppressed by rule", ["rule"])
        self.shadow_hits = Counter(f"{namespace}_shadow_hits", "Shadow-mode rule hits (not applied)", ["rule"])
        self.degraded = Counter(f"{namespace}_degraded_decisions", "Fallback decisions", ["cause"])
        self.latency = Histogram(
            f"{namespace}_decision_latency_seconds", "Time to decide (one customer)", buckets=LATENCY_BUCKETS
        )
        self.events = Counter(f"{namespace}_events", "Real-time events", ["type", "outcome"])
        self.feedback = Counter(f"{namespace}_feedback", "Feedback events", ["type", "recorded"])
        self.reloads = Counter(f"{namespace}_reloads", "Configuration reloads", ["kind", "result"])
        self.ruleset_info = Gauge(f"{namespace}_ruleset_loaded_timestamp", "When the live ruleset was loaded")
        self.spooled = Gauge(f"{namespace}_spooled_records", "Records waiting in the local spool", ["kind"])
        self.spool_bytes = Gauge(f"{namespace}_spool_bytes", "Bytes held by the local spool (capped)")
        self.unlogged = Counter(
            f"{namespace}_unrecorded", "Records neither logged nor spooled (full disk or spool cap)", ["kind"]
        )
        # Children per label values, looked up once: ``labels()`` validates and locks on every call, and a
        # decision touches one child per suppressed action (label values are catalog and rule ids: bounded).
        self._children: dict[tuple[str, ...], Any] = {}

    def collectors(self) -> list[Any]:
        """The registered metrics (to unregister them)."""
        return [m for m in vars(self).values() if hasattr(m, "_name")]

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def decision(
        self,
        action: str,
        channel: str,
        suppressed: list[str],
        shadow: list[str],
        seconds: float,
        degraded_cause: str | None,
    ) -> None:
        self._child(self.decisions, action, channel).inc()
        for rules, metric in ((suppressed, self.suppressions), (shadow, self.shadow_hits)):
            tally: dict[str, int] = {}
            for rule in rules:
                tally[rule] = tally.get(rule, 0) + 1
            for rule, n in tally.items():
                self._child(metric, rule).inc(n)
        if degraded_cause is not None:
            self._child(self.degraded, degraded_cause).inc()
        self.latency.observe(seconds)


class NullMetrics(Metrics):
    """For library use and tests without a metrics endpoint."""

    def __init__(self) -> None:
        pass

    def decision(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return _Null()


class _Null:
    def labels(self, *args: Any) -> _Null:
        return self

    def inc(self, *args: Any) -> None:
        return None

    def set(self, *args: Any) -> None:
        return None

    def observe(self, *args: Any) -> None:
        return None
