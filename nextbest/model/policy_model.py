"""The scoring model every stage shares: P(convert | x, a) and expected revenue for each action.

A ``PolicyModel`` holds plain LightGBM boosters (saved as LightGBM text files plus a JSON manifest), so it
loads without pickles, predicts natively (about 2x faster than an MLflow pyfunc) and is the same object in
training, evaluation, batch decisioning and the online service. Its heads live in ``nextbest.model.heads``.

Expected revenue is either P(convert) times the value head (one conversion learner), or a weighted blend of
members (``members``), each a conversion learner times the value head or a learner of revenue itself; the
blend's weights were fitted on cross-fitted predictions (``nextbest.training.stacking``). Where the log barely
tried an action and the blend's learners disagree on its effect, an ``overlap`` guard replaces that effect by
the average (``nextbest.model.overlap``). P(convert), shown in every decision's breakdown, comes from the
``conversion`` head either way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import lightgbm as lgb
import numpy as np

from nextbest.model.descriptors import ActionDescriptors
from nextbest.model.encoding import FeatureEncoder
from nextbest.model.heads import (
    EPS,
    FAST_PREDICT_ROWS,
    ActionHead,
    ConversionHead,
    Kind,
    Member,
    ValueHead,
    booster_predict,
    calibrated,
)
from nextbest.model.overlap import OverlapGuard

__all__ = [
    "FAST_PREDICT_ROWS",
    "FORMAT_VERSION",
    "ActionHead",
    "ConversionHead",
    "Kind",
    "Member",
    "PolicyModel",
    "Scores",
    "ValueHead",
]
FORMAT_VERSION = 3
# format 1: one conversion head, the value head on features and discount only; format 2: no overlap guard
READABLE_FORMATS = (1, 2, 3)
_EPS = EPS
_booster_predict = booster_predict  # the name tests and benchmarks import


class Scores(NamedTuple):
    """A model's scores for (n, K) customer-actions."""

    p_convert: np.ndarray
    revenue: np.ndarray  # expected revenue
    # where the overlap guard replaced the customer's own effect by the action's average (None: nowhere)
    average_effect: np.ndarray | None = None


@dataclass
class PolicyModel:
    encoder: FeatureEncoder
    action_ids: tuple[str, ...]
    control: str
    conversion: ConversionHead
    value: ValueHead
    calibration: tuple[float, float] | None = None  # Platt scaling on the logit: sigmoid(a * logit(p) + b)
    decision_margin: float = 0.0  # act only when the expected incremental net value exceeds this
    metadata: dict[str, Any] = field(default_factory=dict)
    members: tuple[Member, ...] = ()  # a blend; empty: expected revenue = P(convert) x value head
    overlap: OverlapGuard | None = None  # the blend's effects where the log barely tried an action

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.encoder.feature_names

    def predict(
        self, X: np.ndarray, actions: Sequence[str] | None = None, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """(p_convert, expected_revenue), each (n, K) for ``actions`` (default: all model actions)."""
        scores = self.score(X, actions, threads)
        return scores.p_convert, scores.revenue

    def score(self, X: np.ndarray, actions: Sequence[str] | None = None, threads: int = 1) -> Scores:
        """:meth:`predict`, and which customer-actions the overlap guard gave the average effect."""
        wanted = tuple(actions) if actions is not None else self.action_ids
        unknown = [a for a in wanted if a not in self.action_ids]
        if unknown:
            raise ValueError(f"model {self.metadata.get('name', '')} has no scores for action(s) {unknown}")
        p = calibrated(self.conversion.predict(X, wanted, self.control, threads), self.calibration)
        if not self.members:
            return Scores(p, p * self.value.predict(X, wanted, threads))
        value: np.ndarray | None = None
        revenue = np.zeros_like(p)
        learners: list[np.ndarray] = []  # each learner's own expected revenue, for the overlap guard
        for member in self.members:
            if member.target == "revenue":
                own = member.predict(X, wanted, self.control, threads)
            else:
                same = member.head is self.conversion and member.calibration == self.calibration
                pm = p if same else member.predict(X, wanted, self.control, threads)
                if value is None:
                    value = self.value.predict(X, wanted, threads)
                own = pm * value
            revenue += member.weight * own
            if member.head is not None and member.weight > 0:
                learners.append(own)
        average_effect = None
        if self.overlap is not None:
            revenue, average_effect = self.overlap.apply(X, wanted, self.control, revenue, learners, threads)
        return Scores(p, revenue, average_effect)

    @property
    def value_scale(self) -> float | None:
        """The spread of the net reward the model was trained on: the unit of its decision margin and of
        value-aware exploration (None for models trained before it was recorded)."""
        scale = self.metadata.get("value_scale")
        return float(scale) if isinstance(scale, int | float) and scale > 0 else None

    @property
    def trees(self) -> int:
        """Trees evaluated per scored row and action, all heads together."""
        heads = {id(self.conversion): self.conversion, **{id(m.head): m.head for m in self.members if m.head}}
        guard = self.overlap.trees if self.overlap is not None else 0
        return sum(h.trees for h in heads.values()) + self.value.trees + guard

    # Persistence --------------------------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        value_file = None
        if self.value.booster is not None:
            value_file = "value.txt"
            self.value.booster.save_model(str(directory / value_file))
        members = []
        for i, member in enumerate(self.members):
            head: Any = None if member.head is None else _save_head(member.head, directory, f"m{i}")
            if member.head is self.conversion:
                head = "conversion"
            members.append(
                {
                    "weight": member.weight,
                    "target": member.target,
                    "name": member.name,
                    "calibration": list(member.calibration) if member.calibration else None,
                    "offset": dict(member.offset) if member.offset else None,
                    "head": head,
                }
            )
        manifest = {
            "format_version": FORMAT_VERSION,
            "action_ids": list(self.action_ids),
            "control": self.control,
            "encoder": self.encoder.to_dict(),
            "conversion": _save_head(self.conversion, directory, "conversion"),
            "value": {
                "file": value_file,
                "discounts": self.value.discounts,
                "fallback": self.value.fallback,
                "codes": None
                if self.value.codes is None
                else {k: _finite_or_none(v) for k, v in self.value.codes.items()},
            },
            "members": members,
            "overlap": None if self.overlap is None else self.overlap.save(directory),
            "calibration": list(self.calibration) if self.calibration else None,
            "decision_margin": self.decision_margin,
            "metadata": self.metadata,
        }
        (directory / "model.json").write_text(json.dumps(manifest, indent=2, default=_json_default))
        return directory

    @classmethod
    def load(cls, directory: Path) -> PolicyModel:
        manifest = json.loads((directory / "model.json").read_text())
        if manifest.get("format_version") not in READABLE_FORMATS:
            raise ValueError(f"{directory}: unsupported model format {manifest.get('format_version')}")
        conversion = _load_head(manifest["conversion"], directory)
        value = manifest["value"]
        members = tuple(
            Member(
                weight=float(m["weight"]),
                target=m["target"],
                head=None
                if m["head"] is None
                else conversion
                if m["head"] == "conversion"
                else _load_head(m["head"], directory),
                calibration=tuple(m["calibration"]) if m["calibration"] else None,
                name=str(m.get("name", "")),
                offset={k: float(v) for k, v in m["offset"].items()} if m.get("offset") else None,
            )
            for m in manifest.get("members", [])
        )
        codes = value.get("codes")
        return cls(
            encoder=FeatureEncoder.from_dict(manifest["encoder"]),
            action_ids=tuple(manifest["action_ids"]),
            control=manifest["control"],
            conversion=conversion,
            value=ValueHead(
                lgb.Booster(model_file=str(directory / value["file"])) if value["file"] else None,
                {k: float(v) for k, v in value["discounts"].items()},
                {k: float(v) for k, v in value["fallback"].items()},
                None if codes is None else {k: float("nan") if v is None else float(v) for k, v in codes.items()},
            ),
            calibration=tuple(manifest["calibration"]) if manifest["calibration"] else None,
            decision_margin=float(manifest.get("decision_margin", 0.0)),
            metadata=manifest["metadata"],
            members=members,
            overlap=OverlapGuard.load(manifest["overlap"], directory) if manifest.get("overlap") else None,
        )


def _save_head(head: ActionHead, directory: Path, prefix: str) -> dict[str, Any]:
    files = {}
    for key, booster in head.boosters.items():
        files[key] = f"{prefix}_{key}.txt"
        booster.save_model(str(directory / files[key]))
    return {
        "kind": head.kind,
        "files": files,
        "descriptors": head.descriptors.to_dict() if head.descriptors else None,
    }


def _load_head(data: dict[str, Any], directory: Path) -> ActionHead:
    boosters = {k: lgb.Booster(model_file=str(directory / f)) for k, f in data["files"].items()}
    descriptors = ActionDescriptors.from_dict(data["descriptors"]) if data["descriptors"] else None
    return ActionHead(data["kind"], boosters, descriptors)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None  # NaN codes (no value of their own) are written as null


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
