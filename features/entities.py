"""The one entity: a customer, keyed by an integer id."""

from __future__ import annotations

from feast import Entity, ValueType

from nextbest.core.features import ENTITY


def customer() -> Entity:
    return Entity(name="customer", join_keys=[ENTITY], value_type=ValueType.INT64, description="A customer")
