"""The hot-swappable parts of the service: catalog + compiled rules (a ``DecisionPolicy``) and the model.

Each is built completely before it replaces the live one with a single reference assignment, so a request
sees either the old or the new version, never a mix. An invalid rules or catalog file is rejected whole and
the last good version stays live; the error is kept for readiness details, metrics and logs.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from nextbest.core.catalog import load_catalog
from nextbest.core.decision import DecisionPolicy
from nextbest.core.exploration import Exploration
from nextbest.core.features import all_fields
from nextbest.core.rule_check import check
from nextbest.core.rules import load_ruleset
from nextbest.errors import NextbestError
from nextbest.serving.models import LoadedModel, load_serving_model
from nextbest.settings import Settings

log = logging.getLogger(__name__)


def _fingerprint(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode())
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


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
    """Owns the live policy and model, and reloads them on demand or when their files change."""

    settings: Settings
    load_model: bool = True
    policy: DecisionPolicy = field(init=False)
    model: LoadedModel = field(init=False)
    policy_status: ReloadStatus = field(default_factory=ReloadStatus)
    _files_fingerprint: str = field(init=False, default="")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.policy = self._build_policy()  # at start-up an invalid file is fatal: there is no last good one
        self._files_fingerprint = _fingerprint(self.files)
        self.policy_status.loaded_at = time.time()
        self.model = load_serving_model(self.settings) if self.load_model else LoadedModel(None, None, "none")

    def snapshot(self) -> Snapshot:
        """The live (policy, model) pair; each is swapped by one reference assignment, so both reads see
        whole versions."""
        return Snapshot(self.policy, self.model)

    @property
    def files(self) -> list[Path]:
        s = self.settings
        return [p for p in (s.catalog_path, s.rules_path, s.rule_params_path) if p is not None]

    def _build_policy(self) -> DecisionPolicy:
        s = self.settings
        assert s.catalog_path is not None and s.rules_path is not None
        catalog = load_catalog(s.catalog_path)
        ruleset = load_ruleset(s.rules_path, s.rule_params_path)
        check(ruleset, all_fields(), catalog).raise_for_errors()  # unknown features, type mismatches
        exploration = Exploration(
            rate=s.serving.exploration_rate,
            control_share=s.serving.control_group_share,
            control_salt=s.serving.control_group_salt,
            mode=s.serving.exploration_mode,
            temperature=s.serving.exploration_temperature,
            floor=s.serving.exploration_floor,
        )
        return DecisionPolicy(catalog, ruleset, exploration, fields=all_fields())

    def reload_policy(self, force: bool = False) -> tuple[bool, str | None]:
        """Rebuild the policy if its files changed (or ``force``); returns (swapped, error)."""
        with self._lock:
            fingerprint = _fingerprint(self.files)
            if not force and fingerprint == self._files_fingerprint:
                return False, None
            try:
                policy = self._build_policy()
            except NextbestError as exc:
                status = self.policy_status
                status.error, status.error_at, status.rejected = str(exc), time.time(), status.rejected + 1
                self._files_fingerprint = fingerprint  # do not re-parse the same bad files every tick
                log.error("rejected rules/catalog reload, keeping ruleset %s: %s", self.policy.ruleset.version, exc)
                return False, str(exc)
            old = self.policy.ruleset.version
            self.policy = policy  # the atomic swap
            self._files_fingerprint = fingerprint
            status = self.policy_status
            status.loaded_at, status.error, status.error_at = time.time(), None, None
            status.reloads += 1
            log.info("ruleset %s -> %s, catalog %s", old, policy.ruleset.version, policy.catalog.content_hash)
            return True, None

    def reload_model(self, force: bool = False) -> tuple[bool, str | None]:
        """Load the model again (e.g. after a promotion); keeps the old one when the new one fails."""
        with self._lock:
            if not force and self.settings.serving.model_dir is None and self.model.model is not None:
                current = self._registry_version()
                if current is not None and current == self.model.version:
                    return False, None
            loaded = load_serving_model(self.settings)
            if loaded.model is None and self.model.model is not None:
                log.error("model reload failed, keeping version %s: %s", self.model.version, loaded.error)
                return False, loaded.error
            swapped = loaded.version != self.model.version or self.model.model is None
            self.model = loaded
            return swapped, loaded.error

    def _registry_version(self) -> str | None:
        try:
            from nextbest.model.registry import resolve_version

            s = self.settings.serving
            return str(resolve_version(s.model_name, s.model_alias).version)
        except Exception:
            return None
