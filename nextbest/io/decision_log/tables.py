"""The decision log's two tables, declared once. Both backends' DDL is rendered from this spec: the backends
differ only in how they spell a type (a boolean is INTEGER in SQLite, JSON is TEXT there and JSONB in
PostgreSQL), never in which columns exist or what they promise.

Columns ``added`` after the first release are also added, with their defaults, to a table an older version
created (``ALTER TABLE ... ADD COLUMN`` at start-up), so older rows and older writers keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "real", "bool", "json"]
Dialect = Literal["sqlite", "postgres"]
_TYPES: dict[Dialect, dict[Kind, str]] = {
    "sqlite": {"text": "TEXT", "real": "REAL", "bool": "INTEGER", "json": "TEXT"},
    "postgres": {"text": "TEXT", "real": "DOUBLE PRECISION", "bool": "BOOLEAN", "json": "JSONB"},
}
_EMPTY_OBJECT: dict[Dialect, str] = {"sqlite": "'{}'", "postgres": "'{}'::jsonb"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    #: Portable SQL after the type (``PRIMARY KEY``, ``NOT NULL``, ``REFERENCES {decisions} (decision_id)``...).
    constraint: str = ""
    #: ``DEFAULT '{}'``, an empty JSON object in the dialect's spelling.
    empty_object_default: bool = False
    #: Added after the first release (see the module docstring).
    added: bool = False
    #: Computed by the log from other columns at insert, not a field of the stored record.
    derived: bool = False

    def sql(self, dialect: Dialect, decisions: str) -> str:
        parts = [self.name, _TYPES[dialect][self.kind]]
        if self.constraint:
            parts.append(self.constraint.format(decisions=decisions))
        if self.empty_object_default:
            parts.append(f"DEFAULT {_EMPTY_OBJECT[dialect]}")
        return " ".join(parts)


@dataclass(frozen=True)
class Table:
    suffix: str  # the table is named ``<prefix><suffix>``
    columns: tuple[Column, ...]

    def ddl(self, dialect: Dialect, decisions: str, *, added: bool = True) -> str:
        """The column list of ``CREATE TABLE`` (``added=False``: as the first release declared it)."""
        return ", ".join(c.sql(dialect, decisions) for c in self.columns if added or not c.added)

    def added_columns(self, dialect: Dialect, decisions: str) -> list[tuple[str, str]]:
        """``(name, declaration)`` of each column added since the first release."""
        return [(c.name, c.sql(dialect, decisions)[len(c.name) + 1 :]) for c in self.columns if c.added]

    def stored(self) -> tuple[str, ...]:
        """The columns a record supplies, in insert order (derived ones excluded)."""
        return tuple(c.name for c in self.columns if not c.derived)


_NN = "NOT NULL"
DECISIONS = Table(
    "decisions",
    (
        Column("decision_id", "text", "PRIMARY KEY"),
        Column("request_id", "text", "UNIQUE"),
        Column("customer_id", "text", _NN),
        Column("created_at", "real", _NN),
        Column("channel", "text", _NN),
        Column("action", "text", _NN),
        Column("action_channel", "text"),
        Column("probability", "real", _NN),
        Column("explored", "bool", _NN),
        Column("control", "bool", _NN),
        Column("degraded", "bool", _NN),
        Column("reason", "text"),
        Column("model_version", "text"),
        Column("ruleset_version", "text"),
        Column("catalog_version", "text"),
        Column("feature_service", "text"),
        Column("features", "json", _NN),
        Column("scores", "json", _NN),
        Column("rule_hits", "json", _NN),
        Column("response", "json", _NN),
        # Where the request came from (its context and the client's metadata).
        Column("context", "json", _NN, empty_object_default=True, added=True),
        # The rule ids of ``rule_hits`` alone, ``[[suppressing...], [shadow...]]`` (JSON text): what analytics and
        # the explorer read, without parsing every hit's message. NULL in rows of older versions.
        Column("rule_ids", "text", added=True, derived=True),
        # A hash of the request a request_id was first used with (customer, channel, context, candidates): a
        # replay is answered only for the same request. NULL in rows of older versions (checked by customer).
        Column("request_hash", "text", added=True, derived=True),
    ),
)
FEEDBACK = Table(
    "feedback",
    (
        Column("feedback_id", "text", "PRIMARY KEY"),
        Column("decision_id", "text", "NOT NULL REFERENCES {decisions} (decision_id)"),
        Column("customer_id", "text", _NN),
        Column("created_at", "real", _NN),
        Column("type", "text", "NOT NULL CHECK (type IN ('impression', 'click', 'conversion', 'dismissed'))"),
        Column("revenue", "real"),
        Column("payload", "json", _NN),
    ),
)
#: The indexes both backends create: (table suffix, index suffix, columns).
INDEXES: tuple[tuple[str, str, str], ...] = (
    ("decisions", "customer", "customer_id, created_at"),
    ("decisions", "created", "created_at"),
    ("feedback", "decision", "decision_id"),
    ("feedback", "customer", "customer_id"),
)


def index_statements(prefix_tables: dict[str, str]) -> list[str]:
    """``CREATE INDEX IF NOT EXISTS`` for every index, given the table name of each suffix."""
    return [
        f"CREATE INDEX IF NOT EXISTS {prefix_tables[t]}_{name} ON {prefix_tables[t]} ({cols})"
        for t, name, cols in INDEXES
    ]
