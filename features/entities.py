"""The one entity: a customer, keyed by a string id.

Customer ids are opaque strings (``nextbest.core.ids``: integers are accepted everywhere and keyed as their
decimal text), so the entity is a STRING: online keys, pushed events and materialized rows all carry
``string_val`` keys, and the offline sources hold ``customer_id`` as text (``nextbest data generate`` writes the
world's integer ids as strings). Feature tables of an older world with integer ids still materialize (Feast
converts the values to the entity's type) and train (:func:`nextbest.training.dataset.from_feast` matches the
entity rows to the tables' key type).
"""

from __future__ import annotations

from feast import Entity, ValueType

from nextbest.core.features import ENTITY


def customer() -> Entity:
    return Entity(name="customer", join_keys=[ENTITY], value_type=ValueType.STRING, description="A customer")
