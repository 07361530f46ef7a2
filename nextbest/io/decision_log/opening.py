"""Opening a decision log from its URL: the backend, its options and its table prefix."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from nextbest.errors import ConfigError
from nextbest.io.decision_log.base import DEFAULT_PREFIX, DecisionLog
from nextbest.io.decision_log.records import redact


def open_decision_log(url: str, *, table_prefix: str | None = None) -> DecisionLog:
    """Open (and create the schema of) the log at ``url``: ``sqlite:////abs/path.db`` or
    ``postgresql://user@host:port/db``. ``table_prefix`` (or ``?table_prefix=`` in the URL) isolates tables.
    SQLite also takes ``?synchronous=FULL`` to survive power loss, not only a crash of the process."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = table_prefix or query.pop("table_prefix", None) or DEFAULT_PREFIX
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        from nextbest.io.decision_log.sqlite import SqliteDecisionLog

        path = url.split("?", 1)[0][len("sqlite:///") :]
        if not url.lower().startswith("sqlite:///") or not path.startswith("/"):
            raise ConfigError(f"decision_log_url {url!r}: use sqlite:////absolute/path/decisions.db")
        synchronous = query.pop("synchronous", "NORMAL").upper()
        if query or synchronous not in ("NORMAL", "FULL"):
            raise ConfigError(f"decision_log_url {url!r}: SQLite takes only table_prefix and synchronous=NORMAL|FULL")
        return SqliteDecisionLog(path, table_prefix=prefix, synchronous=synchronous)
    if scheme in ("postgresql", "postgres"):
        from nextbest.io.decision_log.postgres import PostgresDecisionLog

        query.setdefault("connect_timeout", "5")
        # quote, not quote_plus: libpq reads "%20" as a space, "+" literally (options=-c statement_timeout=...)
        conninfo = urlunsplit(
            (parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment)
        )
        return PostgresDecisionLog(conninfo, redact(url), table_prefix=prefix)
    raise ConfigError(
        f"decision_log_url {redact(url)!r}: unknown scheme {parts.scheme!r}; use sqlite:///... or postgresql://..."
    )
