"""A PostgreSQL database of a test's own, created on the test server and dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


@contextmanager
def scratch_database(postgres_url: str, prefix: str, scheme: str = "postgresql") -> Iterator[str]:
    """A fresh database ``<prefix>_<random>`` on the server of ``postgres_url``; yields its URL (with ``scheme``,
    e.g. ``postgresql+psycopg`` for SQLAlchemy) and drops it, connections and all, at the end."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(postgres_url)._replace(scheme=scheme, path=f"/{name}"))
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def decision_log_tables(postgres_url: str) -> Iterator[str]:
    """A decision-log URL on the shared test database with tables of its own (a random prefix), dropped after
    with the contact-history summaries and their triggers."""
    import psycopg

    from nextbest.io.decision_log.history import drop_statements

    prefix = f"t{uuid.uuid4().hex[:12]}_"
    yield f"{postgres_url}?table_prefix={prefix}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for sql in drop_statements(prefix):
            conn.execute(sql)
