"""The explorer's what-if, run in a separate process with a time limit.

A pasted ruleset is compiled and evaluated by the CEL engine, native code that holds the GIL for a whole
evaluation: in a thread, an expensive ruleset would still stall every request of the worker. Its count, size
and nesting are bounded at parse, but two nested comprehensions over long list literals stay within those
bounds and can cost minutes. So the what-if runs in a child process (spawned, started once and kept); a job
that overruns ``serving.whatif_timeout_s`` is a 422 and the child is killed and replaced.

The child gets plain data (catalog, the live ruleset's specs and parameters, the proposed ruleset's name or
text, the previewed decision and its inputs) and rebuilds the policies itself: compiled CEL programs cannot
cross a process boundary.
"""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import dataclass
from multiprocessing.pool import Pool
from typing import Any

from nextbest.core.catalog import ActionCatalog
from nextbest.core.decision import Decision, DecisionPolicy, DecisionRequest
from nextbest.core.exploration import Exploration
from nextbest.errors import ConfigError
from nextbest.settings import Settings

START_TIMEOUT_S = 60.0  # spawning the child imports the core once; not counted in a job's limit


@dataclass(frozen=True)
class Replay:
    """The previewed decision and the inputs it saw (what :func:`explorer_data.what_if` reads)."""

    request: DecisionRequest
    decision: Decision
    features: dict[str, Any]
    history: dict[str, Any] | None


@dataclass(frozen=True)
class WhatIfJob:
    settings: Settings
    catalog: ActionCatalog
    exploration: Exploration
    live_label: str
    live_rules: list[dict[str, Any]]
    live_params: dict[str, Any]
    live_source: str
    rules_file: str | None
    rules_yaml: str | None
    replay: Replay
    margin: float
    scale: float | None


def job_for(
    runtime: Any, preview: Any, whatif: tuple[str | None, str | None], margin: float, scale: float | None
) -> WhatIfJob:
    live: DecisionPolicy = runtime.components.policy
    rs = live.ruleset
    return WhatIfJob(
        settings=runtime.settings,
        catalog=live.catalog,
        exploration=live.exploration,
        live_label=rs.label,
        live_rules=[s.model_dump(mode="json") for s in rs.specs],
        live_params=dict(rs.params),
        live_source=rs.source,
        rules_file=whatif[0],
        rules_yaml=whatif[1],
        replay=Replay(preview.request, preview.decision, dict(preview.features), preview.history),
        margin=margin,
        scale=scale,
    )


def run_job(job: WhatIfJob) -> dict[str, Any]:
    """In the child: both policies rebuilt, the what-if computed (any ConfigError travels back as is)."""
    from nextbest.core.features import all_fields
    from nextbest.core.rules import build_ruleset
    from nextbest.serving.explorer_data import proposed_policy, what_if

    document = {"version": job.live_label, "rules": job.live_rules}
    ruleset = build_ruleset(document, job.live_params, source=job.live_source)
    live = DecisionPolicy(job.catalog, ruleset, job.exploration, fields=all_fields())
    proposed = proposed_policy(job.settings, live, job.rules_file, job.rules_yaml)
    return what_if(job.replay, live, proposed, job.margin, job.scale)


def _ready() -> bool:
    return True


class WhatIfPool:
    """One child process, started at the first what-if and replaced after a job overran its limit."""

    def __init__(self) -> None:
        self._pool: Pool | None = None
        self._lock = threading.Lock()

    def _get(self) -> Pool:
        with self._lock:
            if self._pool is None:
                pool = multiprocessing.get_context("spawn").Pool(processes=1)
                pool.apply_async(_ready).get(START_TIMEOUT_S)
                self._pool = pool
            return self._pool

    def run(self, job: WhatIfJob, seconds: float) -> dict[str, Any]:
        pool = self._get()
        pending = pool.apply_async(run_job, (job,))
        try:
            result: dict[str, Any] = pending.get(seconds)
            return result
        except multiprocessing.TimeoutError:
            self._kill(pool)
            raise ConfigError(
                f"whatif: the what-if did not finish within {seconds:g} s (the limit) and was stopped; "
                "a rule's comprehensions are too costly: use shorter lists or fewer nested all/exists"
            ) from None

    def _kill(self, pool: Pool) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.terminate()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
