"""The action catalog: what can be done to a customer, through which channel, at what cost.

Validated once at load (pydantic, ``extra="forbid"``) and shared by the world simulator, training and
serving. Holding numeric attributes as numpy vectors lets arbitration stay vectorised over candidates.
"""

from __future__ import annotations

import hashlib
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nextbest.errors import ConfigError

Category = Literal["none", "promo", "reminder", "service"]
ANY_CHANNEL = "any"
_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class Action(BaseModel):
    """One thing the business can do. ``value`` is the order value it leads to when the customer converts."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    id: str
    description: str = ""
    channels: tuple[str, ...] = Field(min_length=1)
    category: Category
    value: float = Field(ge=0.0, le=1e9, description="Expected order value (currency) if the customer converts.")
    cost: float = Field(ge=0.0, le=1e9, description="Fixed cost of sending the action (currency).")
    discount: float = Field(0.0, ge=0.0, lt=1.0, description="Share of the order value given away.")
    lever: float = Field(1.0, ge=0.0, le=1e6, description="Business weight multiplied into the net value.")
    consent: str | None = Field(None, description="Channel whose opt-in the action needs, if any.")
    tags: tuple[str, ...] = ()
    eligibility: str | None = Field(None, description="Optional CEL expression that must hold.")

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be lower_snake_case, start with a letter, at most 63 characters")
        return value

    @property
    def promotional(self) -> bool:
        return self.category == "promo"


class ActionCatalog(BaseModel):
    """The whole catalog. ``control`` names the action every uplift is measured against (doing nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: str = "1"
    currency: str = "EUR"
    channels: tuple[str, ...] = Field(min_length=1)
    control: str
    actions: tuple[Action, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _consistent(self) -> ActionCatalog:
        ids = [a.id for a in self.actions]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate action ids: {', '.join(dupes)}")
        if self.control not in ids:
            raise ValueError(f"control action {self.control!r} is not in actions")
        if ANY_CHANNEL in self.channels:
            raise ValueError(f"{ANY_CHANNEL!r} is reserved for requests and cannot be a catalog channel")
        known = set(self.channels)
        for action in self.actions:
            unknown = [c for c in action.channels if c not in known]
            if unknown:
                raise ValueError(f"action {action.id}: unknown channel(s) {unknown}; declared: {sorted(known)}")
            if action.consent is not None and action.consent not in known:
                raise ValueError(f"action {action.id}: consent channel {action.consent!r} is not declared")
        ctrl = self.by_id[self.control]
        if ctrl.cost != 0.0 or ctrl.discount != 0.0:
            raise ValueError(f"control action {self.control!r} must have zero cost and discount")
        return self

    # Lookups ---------------------------------------------------------------------------------------------
    @cached_property
    def by_id(self) -> dict[str, Action]:
        return {a.id: a for a in self.actions}

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.actions)

    @cached_property
    def index(self) -> dict[str, int]:
        return {a.id: i for i, a in enumerate(self.actions)}

    @cached_property
    def treatments(self) -> tuple[str, ...]:
        """Every action except the control."""
        return tuple(a.id for a in self.actions if a.id != self.control)

    @cached_property
    def values(self) -> np.ndarray:
        return np.array([a.value for a in self.actions], dtype=np.float64)

    @cached_property
    def costs(self) -> np.ndarray:
        return np.array([a.cost for a in self.actions], dtype=np.float64)

    @cached_property
    def discounts(self) -> np.ndarray:
        return np.array([a.discount for a in self.actions], dtype=np.float64)

    @cached_property
    def levers(self) -> np.ndarray:
        return np.array([a.lever for a in self.actions], dtype=np.float64)

    @cached_property
    def column_cache(self) -> dict[tuple[str, ...], tuple[np.ndarray, int]]:
        return {}

    def columns(self, action_ids: tuple[str, ...]) -> tuple[np.ndarray, int]:
        """Catalog indices of ``action_ids`` and the control's position among them (ValueError when it is not
        there); cached per candidate tuple, as every decision over the same candidates asks again."""
        cache = self.column_cache
        found = cache.get(action_ids)
        if found is None:
            if len(cache) >= 256:
                cache.clear()
            idx = np.array([self.index[a] for a in action_ids], dtype=np.intp)
            found = cache[action_ids] = (idx, action_ids.index(self.control))
        return found

    @cached_property
    def content_hash(self) -> str:
        payload = self.model_dump_json(exclude={"by_id", "ids", "index"}).encode()
        return hashlib.sha256(payload).hexdigest()[:12]

    def for_channel(self, channel: str) -> tuple[str, ...]:
        """Candidate ids for a request channel (``any`` means every channel); the control is always in."""
        if channel != ANY_CHANNEL and channel not in self.channels:
            raise ConfigError(f"unknown channel {channel!r}; expected one of {[*self.channels, ANY_CHANNEL]}")
        return tuple(
            a.id for a in self.actions if a.id == self.control or channel == ANY_CHANNEL or channel in a.channels
        )

    def delivery_channel(self, request_channel: str, action_id: str) -> str | None:
        """The channel ``action_id`` goes out on for a request on ``request_channel``: that channel when the
        action has it, else the action's first (``any`` requests); None for an action not in the catalog."""
        action = self.by_id.get(action_id)
        if action is None:
            return None
        return request_channel if request_channel in action.channels else action.channels[0]

    def require(self, action_ids: list[str] | tuple[str, ...]) -> None:
        unknown = [a for a in action_ids if a not in self.by_id]
        if unknown:
            raise ConfigError(f"unknown action(s) {unknown}; the catalog has {list(self.ids)}")


def load_catalog(path: Path) -> ActionCatalog:
    """Read and validate a catalog file; every problem becomes a :class:`ConfigError` naming the file."""
    if not path.is_file():
        raise ConfigError(f"action catalog {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'channels', 'control' and 'actions'")
    try:
        return ActionCatalog.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "catalog"
        raise ConfigError(f"{path}: {where}: {first['msg']}") from exc
