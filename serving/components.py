"""The hot-swappable parts of the service: catalog + compiled rules (a ``DecisionPolicy``) and the model.

Each is built completely before it replaces the live one with a single reference assignment, so a request
sees either the old or the new version, never a mix. An invalid rules or catalog file is rejected whole and
the last good version stays live; the error is kept for readiness details, metrics and logs. Building a policy
and the catalog fit checks are in :mod:`nextbest.serving.policy` (``build_policy`` is re-exported here).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from nextbest.core.contract import (
    CatalogDiff,
    FeatureGaps,
    feature_service_mismatch,
    model_feature_service,
    rule_feature_gaps,
)
from nextbest.core.decision import DecisionPolicy
from nextbest.core.features import DEFAULT_FEATURE_SERVICE, service_features
from nextbest.errors import NextbestError
from nextbest.serving.models import LoadedModel, load_serving_model
from nextbest.serving.policy import build_policy, catalog_fit, files_fingerprint, fits
from nextbest.settings import Settings

__all__ = ["Components", "ReloadStatus", "Snapshot", "build_policy", "catalog_fit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The live policy and model as one request sees them: taken once per request (:meth:`Components.snapshot`)
    and passed down, so a reload in the middle of a request cannot mix versions within it."""

    policy: DecisionPolicy
    model: LoadedModel


@dataclass
class ReloadStatus:
    loaded_at: float = 0.0
    error: str | None = None
    error_at: float | None = None
    reloads: int = 0
    rejected: int = 0


@dataclass
class Components:
    """Owns the live policy and model, and reloads them on demand or when their files change.

    The live pair always fits: a model whose stored catalog is incompatible with the live catalog is refused
    (the previous model stays; with none, decisions are the documented fallback, naming the difference), and a
    catalog incompatible with the live model is rejected like an invalid file (the last good one stays). A
    refused model and a rejected catalog are remembered, so a catalog and a model changed together (a new
    control, new actions) go live together, in one swap, whichever of the two arrives first."""

    settings: Settings
    load_model: bool = True
    policy_status: ReloadStatus = field(default_factory=ReloadStatus)
    refused_model: str | None = None  # why the last model offered is not served (None: it is)
    #: The feature service the online reader serves: the first model's (nextbest/core/contract.py), else the
    #: default. A model trained on another one is refused until a restart (the reader is built once).
    feature_service: str = DEFAULT_FEATURE_SERVICE
    feature_service_error: str | None = None  # the last model refused for its feature service, naming both
    gaps: FeatureGaps = field(default_factory=FeatureGaps)
    _live: Snapshot = field(init=False, repr=False)
    _pending_policy: DecisionPolicy | None = field(default=None, repr=False)  # rejected: the live model does not fit
    _pending_model: LoadedModel | None = field(default=None, repr=False)  # refused: the live catalog does not fit
    _refused_version: str | None = field(default=None, repr=False)
    _files_fingerprint: str = field(init=False, default="")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        policy = self._build_policy()  # at start-up an invalid file is fatal: there is no last good one
        self._live = Snapshot(policy, LoadedModel(None, None, "none"))
        self._files_fingerprint = files_fingerprint(self.files)
        self.policy_status.loaded_at = time.time()
        if self.load_model:
            first = load_serving_model(self.settings)
            if first.model is not None:
                self.feature_service = model_feature_service(first.model.metadata) or DEFAULT_FEATURE_SERVICE
            self._offer_model(first)
        self._check_features()

    # The live pair: one reference, so a request never sees the policy of one swap with the model of another.
    @property
    def policy(self) -> DecisionPolicy:
        return self._live.policy

    @policy.setter
    def policy(self, policy: DecisionPolicy) -> None:
        self._live = Snapshot(policy, self._live.model)

    @property
    def model(self) -> LoadedModel:
        return self._live.model

    @model.setter
    def model(self, model: LoadedModel) -> None:
        self._live = Snapshot(self._live.policy, model)

    def snapshot(self) -> Snapshot:
        """The live (policy, model) pair, swapped as one reference."""
        return self._live

    @property
    def files(self) -> list[Path]:
        s = self.settings
        return [p for p in (s.catalog_path, s.rules_path, s.rule_params_path) if p is not None]

    @property
    def catalog_diff(self) -> CatalogDiff | None:
        """How the live catalog differs from the live model's (tolerated differences only: the pair fits)."""
        return catalog_fit(self.policy, self.model)

    def _build_policy(self) -> DecisionPolicy:
        return build_policy(self.settings)

    def _check_features(self) -> None:
        """Rules and model features the decision's features lack: logged once per change of the live pair."""
        model = self.model.model
        service = service_features(self.feature_service)
        gaps = rule_feature_gaps(self.policy.engine, service, model.feature_names if model else ())
        if gaps and gaps != self.gaps:
            log.warning("%s", gaps.describe(self.features_label))
        self.gaps = gaps

    @property
    def features_label(self) -> str:
        return f"the online features (feature service {self.feature_service})"

    def _policy_swapped(self, old: DecisionPolicy, why: str = "") -> None:
        self._pending_policy = None
        status = self.policy_status
        status.loaded_at, status.error, status.error_at = time.time(), None, None
        status.reloads += 1
        new = self.policy
        log.info(
            "ruleset %s -> %s, catalog %s%s", old.ruleset.version, new.ruleset.version, new.catalog.content_hash, why
        )

    def _offer_model(self, loaded: LoadedModel) -> tuple[bool, str | None]:
        """Serve ``loaded`` if it fits the live catalog, or a rejected catalog waiting for it (both then go live
        in one swap); otherwise refuse it. Returns (swapped, error)."""
        if loaded.model is None:
            if self.model.model is not None:
                log.error("model reload failed, keeping version %s: %s", self.model.version, loaded.error)
                return False, loaded.error
            self.model = loaded
            return True, loaded.error
        mismatch = feature_service_mismatch(loaded.model.metadata, loaded.version, self.feature_service)
        if mismatch is not None:
            self.feature_service_error = mismatch
            if self.model.model is not None:
                log.error("%s; keeping version %s", mismatch, self.model.version)
                return False, mismatch
            log.error("%s; serving the fallback until a model fits", mismatch)
            self.model = LoadedModel(None, None, loaded.source, mismatch, time.time())
            return False, mismatch
        self.feature_service_error = None
        pending = self._pending_policy
        target = pending if pending is not None and fits(pending, loaded) else self.policy
        if not fits(target, loaded):
            diff = catalog_fit(target, loaded)
            message = (
                f"model {loaded.version} ({loaded.source}) refused: its catalog does not fit the live catalog "
                f"{self.settings.catalog_path}: {diff.describe() if diff else '?'}"
            )
            self.refused_model, self._pending_model, self._refused_version = message, loaded, loaded.version
            if self.model.model is not None:
                log.error("%s; keeping version %s", message, self.model.version)
                return False, message
            log.error("%s; serving the fallback until a model fits", message)
            self.model = LoadedModel(None, None, loaded.source, message, time.time())
            return False, message
        old = self.policy
        swapped = loaded.version != self.model.version or self.model.model is None or target is not old
        self._live = Snapshot(target, loaded)  # the atomic swap (of both, when a waiting catalog goes live)
        if target is not old:
            self._policy_swapped(old, f", with model {loaded.version}")
        self.refused_model, self._pending_model, self._refused_version = None, None, None
        diff = self.catalog_diff
        if diff is not None and not diff.same:
            log.warning("model %s: the live catalog differs (tolerated): %s", loaded.version, diff.describe())
        self._check_features()
        return swapped, None

    def reload_policy(self, force: bool = False) -> tuple[bool, str | None]:
        """Rebuild the policy if its files changed (or ``force``); returns (swapped, error)."""
        with self._lock:
            fingerprint = files_fingerprint(self.files)
            if not force and fingerprint == self._files_fingerprint:
                return False, None
            status = self.policy_status
            try:
                policy = self._build_policy()
            except NextbestError as exc:
                status.error, status.error_at, status.rejected = str(exc), time.time(), status.rejected + 1
                self._files_fingerprint = fingerprint  # do not re-parse the same bad files every tick
                log.error("rejected rules/catalog reload, keeping ruleset %s: %s", self.policy.ruleset.version, exc)
                return False, str(exc)
            self._files_fingerprint = fingerprint
            old, waiting = self.policy, self._pending_model
            if self.model.model is not None and not fits(policy, self.model):
                if waiting is not None and fits(policy, waiting):  # the model refused earlier fits this catalog
                    self._live = Snapshot(policy, waiting)
                    self._policy_swapped(old, f", with model {waiting.version}")
                    self.refused_model, self._pending_model, self._refused_version = None, None, None
                    self._check_features()
                    return True, None
                diff = catalog_fit(policy, self.model, "the new catalog")
                error = (
                    f"catalog {self.settings.catalog_path} does not fit the live model {self.model.version} (kept "
                    f"catalog {old.catalog.content_hash}; this one goes live with a model trained on it): "
                    f"{diff.describe() if diff else '?'}"
                )
                self._pending_policy = policy
                status.error, status.error_at, status.rejected = error, time.time(), status.rejected + 1
                log.error("rejected rules/catalog reload: %s", error)
                return False, error
            if self.model.model is None and waiting is not None and fits(policy, waiting):
                self._live = Snapshot(policy, waiting)  # the catalog the refused model needed is live now
                self.refused_model, self._pending_model, self._refused_version = None, None, None
            else:
                self.policy = policy  # the atomic swap
            self._policy_swapped(old)
            self._check_features()
            return True, None

    def reload_model(self, force: bool = False) -> tuple[bool, str | None]:
        """Load the model again (e.g. after a promotion); keeps the old one when the new one fails to load or
        does not fit the live catalog."""
        with self._lock:
            if not force and self.settings.serving.model_dir is None:
                known = self.model.model is not None or self._refused_version is not None
                current = self._registry_version() if known else None
                if current is not None and current in (self.model.version, self._refused_version):
                    return False, None
            return self._offer_model(load_serving_model(self.settings))

    def _registry_version(self) -> str | None:
        try:
            from nextbest.model.registry import resolve_version

            s = self.settings.serving
            return str(resolve_version(s.model_name, s.model_alias).version)
        except Exception:
            return None
