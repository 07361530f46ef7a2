"""The BentoML service: ``bentoml serve nextbest.serving.service:NextBest`` (``nextbest serve`` runs this).

BentoML provides the server, workers, ``/healthz`` ``/livez`` ``/readyz``, Prometheus ``/metrics`` and Bento
builds; the decision API is the FastAPI app of :mod:`nextbest.serving.app`, mounted at the root, so its
OpenAPI contract and error format are exactly ours. Everything heavy (Feast, models, the decision log) is
built in ``__init__``, inside each worker, never at import. The worker count is the one setting read at
import, because BentoML takes it from the decorator (and so is the access-log switch).

Inside a Bento built by ``nextbest build`` (its project directory holds ``nextbest-bento.json``) the service
uses what was packaged: the model imported from the registry into the BentoML model store, and the catalog,
rules and rule parameters of the build. A setting given explicitly (``NEXTBEST_SERVING__MODEL_DIR``,
``NEXTBEST_RULES_PATH``, ...) still wins; an explicit ``NEXTBEST_SERVING__MODEL_ALIAS`` serves that alias
from the registry (and follows promotions) instead of the packaged model.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import bentoml

from nextbest.serving.app import create_app
from nextbest.settings import Settings

log = logging.getLogger("nextbest.serving")
app = create_app()
BENTO_MANIFEST = "nextbest-bento.json"  # written by `nextbest build`


def packaged_settings(settings: Settings) -> Settings:
    """The settings with the Bento's packaged model and files as defaults (unchanged outside a Bento)."""
    file = settings.project_dir / BENTO_MANIFEST
    if not file.is_file():
        return settings
    manifest = json.loads(file.read_text())
    updates: dict[str, object] = {
        key: settings.project_dir / manifest[key]
        for key in ("catalog_path", "rules_path", "rule_params_path")
        if manifest.get(key) and key not in settings.model_fields_set
    }
    model, serving = manifest.get("model"), settings.serving
    follow_registry = "model_alias" in serving.model_fields_set  # an explicit alias: serve the registry's
    if model and serving.model_dir is None and not follow_registry:
        path = Path(bentoml.models.get(model["bentoml_tag"]).path_of(model["path"]))
        updates["serving"] = serving.model_copy(update={"model_dir": path})
    log.info("serving the Bento's packaged %s", ", ".join(sorted(updates)) or "nothing (all configured)")
    return settings.model_copy(update=updates)


@bentoml.service(
    name="nextbest",
    workers=int(os.environ.get("NEXTBEST_SERVING__WORKERS", "1")),
    traffic={"timeout": 30},
    # Access lines per request cost ~10% of the throughput of /decide; every decision is in the decision log
    # and the metrics. NEXTBEST_SERVING__ACCESS_LOG=true turns them on.
    logging={"access": {"enabled": os.environ.get("NEXTBEST_SERVING__ACCESS_LOG", "false").lower() == "true"}},
)
@bentoml.asgi_app(app, path="/")
class NextBest:
    def __init__(self) -> None:
        from nextbest.serving.bentoml_fixes import answer_bad_requests, cancel_request_timers
        from nextbest.serving.metrics import Metrics
        from nextbest.serving.runtime import build_runtime, freeze_startup_objects
        from nextbest.settings import load_settings

        cancel_request_timers()  # BentoML keeps every request alive for the whole timeout otherwise
        answer_bad_requests()  # a malformed body to /ping is a 400, not a 500

        settings = packaged_settings(load_settings())
        self.runtime = build_runtime(settings, Metrics())
        app.state.runtime = self.runtime
        freeze_startup_objects()  # no ~200 ms full collections over start-up objects under load
        self._stop = threading.Event()
        interval = settings.serving.reload_interval_s
        if interval > 0:
            threading.Thread(target=self._watch, args=(interval,), name="nextbest-reload", daemon=True).start()
        replay_every = settings.serving.spool_replay_interval_s
        threading.Thread(target=self._replay, args=(replay_every,), name="nextbest-spool", daemon=True).start()
        log.info(
            "nextbest ready: model %s, ruleset %s",
            self.runtime.components.model.version,
            self.runtime.components.policy.ruleset.version,
        )

    def _watch(self, interval: float) -> None:
        """Pick up changed rule/catalog files and a moved model alias."""
        model_every = max(1, int(30 / interval))
        tick = 0
        while not self._stop.wait(interval):
            tick += 1
            try:
                self.runtime.reload(force=False, include_model=tick % model_every == 0)
            except Exception:
                log.exception("reload watcher tick failed")

    def _replay(self, interval: float) -> None:
        """Write spooled records (decisions, feedback, events) to their backends in the background, in bounded
        batches, off the request path; each worker's thread takes the spool's lock per batch."""
        while not self._stop.wait(interval):
            try:
                self.runtime.drain_spool(stop=self._stop.is_set)
            except Exception:
                log.exception("spool replay failed")

    @bentoml.api(route="/ping")  # type: ignore[untyped-decorator]  # _bentoml_sdk ships no py.typed
    async def ping(self) -> dict[str, float]:
        """A trivial BentoML endpoint: the throughput reference of the HTTP benchmark."""
        return {"ok": 1.0, "time": time.time()}

    def __is_ready__(self) -> bool:
        return getattr(self, "runtime", None) is not None
