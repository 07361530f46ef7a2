"""Action descriptors: what the S-learner knows about an action besides its identity.

Uplift lives in interactions between the customer and the action (a discount for the price-sensitive, a
contact for someone who never opens email, an email to someone who has not opted in). Giving the model the
action's discount, whether it is promotional, whether it contacts the customer at all and whether the
customer can be reached on its consent channel turns those interactions into single splits, which is what
makes a shared model learn them from tens of thousands of rows instead of millions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextbest.core.catalog import ActionCatalog

NAMES = ("action", "action_discount", "action_promo", "action_contact", "action_reachable")


@dataclass(frozen=True)
class ActionDescriptors:
    action_ids: tuple[str, ...]
    discount: tuple[float, ...]
    promo: tuple[float, ...]
    contact: tuple[float, ...]
    consent_column: tuple[int, ...]  # column of the customer's opt-in for the action's channel; -1 when none
    # per candidate tuple: (descriptor rows (K, width) with "reachable" = 1, positions needing consent, columns)
    _templates: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_catalog(cls, catalog: ActionCatalog, feature_names: Sequence[str]) -> ActionDescriptors:
        names = list(feature_names)
        columns = []
        for a in catalog.actions:
            col = f"{a.consent}_opt_in" if a.consent else None
            columns.append(names.index(col) if col in names else -1)
        return cls(
            catalog.ids,
            tuple(a.discount for a in catalog.actions),
            tuple(float(a.category == "promo") for a in catalog.actions),
            tuple(float(a.category != "none") for a in catalog.actions),
            tuple(columns),
        )

    @property
    def width(self) -> int:
        return len(NAMES)

    def columns(self, X: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Descriptor columns for rows ``X`` with action codes ``codes`` (index into ``action_ids``)."""
        codes = np.asarray(codes, dtype=np.int64)
        out = np.empty((X.shape[0], len(NAMES)), dtype=np.float64)
        out[:, 0] = codes
        out[:, 1] = np.asarray(self.discount)[codes]
        out[:, 2] = np.asarray(self.promo)[codes]
        out[:, 3] = np.asarray(self.contact)[codes]
        consent = np.asarray(self.consent_column)[codes]
        reachable = np.ones(X.shape[0])
        needs = consent >= 0
        if needs.any():
            rows = np.flatnonzero(needs)
            reachable[rows] = (X[rows, consent[rows]] == 1).astype(np.float64)
        out[:, 4] = reachable
        return out

    def design(self, X: np.ndarray, codes: np.ndarray) -> np.ndarray:
        return np.hstack([X, self.columns(X, codes)])

    def stacked(self, X: np.ndarray, actions: Sequence[str]) -> np.ndarray:
        """Every row of X once per action (action-major): the S-learner's scoring matrix, equal to
        ``design(tile(X), codes)`` but written in place from a per-candidate-set template (the serving path
        calls this once per request)."""
        template, needs, consent = self._template(tuple(actions))
        k, (n, f) = len(template), X.shape
        out = np.empty((k, n, f + len(NAMES)), dtype=np.float64)
        out[:, :, :f] = X
        out[:, :, f:] = template[:, None, :]
        if needs.size:
            out[needs, :, f + 4] = (X[:, consent] == 1).T
        return out.reshape(k * n, f + len(NAMES))

    def _template(self, actions: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = self._templates.get(actions)
        if found is None:
            codes = np.array([self.action_ids.index(a) for a in actions], dtype=np.int64)
            attrs = (np.asarray(v, dtype=np.float64)[codes] for v in (self.discount, self.promo, self.contact))
            template = np.column_stack([codes, *attrs, np.ones(len(codes))]).astype(np.float64)
            consent = np.asarray(self.consent_column, dtype=np.int64)[codes]
            needs = np.flatnonzero(consent >= 0)
            if len(self._templates) >= 64:
                self._templates.clear()
            found = self._templates[actions] = (template, needs, consent[needs])
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "action_ids": list(self.action_ids),
            "discount": list(self.discount),
            "promo": list(self.promo),
            "contact": list(self.contact),
            "consent_column": list(self.consent_column),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActionDescriptors:
        return cls(
            tuple(data["action_ids"]),
            tuple(data["discount"]),
            tuple(data["promo"]),
            tuple(data["contact"]),
            tuple(int(c) for c in data["consent_column"]),
        )
