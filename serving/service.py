"""The BentoML service: ``bentoml serve nextbest.serving.service:NextBest`` (``nextbest serve`` runs this).

BentoML provides the server, workers, ``/healthz`` ``/livez`` ``/readyz``, Prometheus ``/metrics`` and Bento
builds; the decision API is the FastAPI app of :mod:`nextbest.serving.app`, mounted at the root, so its
OpenAPI contract and error format are exactly ours. Everything heavy (Feast, models, the decision log) is
built in ``__init__``, inside each worker, never at import. The worker count is the one setting read at
import, because BentoML takes it from the decorator.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import bentoml

from nextbest.serving.app import create_app

log = logging.getLogger("nextbest.serving")
app = create_app()


@bentoml.service(
    name="nextbest",
    workers=int(os.environ.get("NEXTBEST_SERVING__WORKERS", "1")),
    traffic={"timeout": 30},
)
@bentoml.asgi_app(app, path="/")
class NextBest:
    def __init__(self) -> None:
        from nextbest.serving.metrics import Metrics
        from nextbest.serving.runtime import build_runtime
        from nextbest.settings import load_settings

        settings = load_settings()
        self.runtime = build_runtime(settings, Metrics())
        app.state.runtime = self.runtime
        self._stop = threading.Event()
        interval = settings.serving.reload_interval_s
        if interval > 0:
            threading.Thread(target=self._watch, args=(interval,), name="nextbest-reload", daemon=True).start()
        log.info(
            "nextbest ready: model %s, ruleset %s",
            self.runtime.components.model.version,
            self.runtime.components.policy.ruleset.version,
        )

    def _watch(self, interval: float) -> None:
        """Pick up changed rule/catalog files and a moved model alias; replay spooled records."""
        model_every = max(1, int(30 / interval))
        tick = 0
        while not self._stop.wait(interval):
            tick += 1
            try:
                self.runtime.reload(force=False, include_model=tick % model_every == 0)
                self.runtime.replay_spool()
            except Exception:
                log.exception("reload watcher tick failed")

    @bentoml.api(route="/ping")
    async def ping(self) -> dict[str, float]:
        """A trivial BentoML endpoint: the throughput reference of the HTTP benchmark."""
        return {"ok": 1.0, "time": time.time()}

    def __is_ready__(self) -> bool:
        return getattr(self, "runtime", None) is not None
