"""The PostgreSQL decision log bounds every statement (a query stuck on a lock or a sick server is cancelled,
the connection stays usable) except schema work and retraining reads; TCP keepalives are on."""

from __future__ import annotations

import threading

import psycopg
import pytest

from nextbest.errors import UnavailableError
from nextbest.io.decision_log import open_decision_log
from nextbest.io.decision_log.postgres import STATEMENT_TIMEOUT_MS, PostgresDecisionLog


def _show(log: PostgresDecisionLog, name: str) -> str:
    return str(log._run(lambda cur: cur.execute(f"SHOW {name}").fetchone()[0]))


def test_statements_are_bounded_by_default_and_keepalives_are_on(postgres_log_url: str) -> None:
    with open_decision_log(postgres_log_url) as log:
        assert isinstance(log, PostgresDecisionLog)
        assert _show(log, "statement_timeout") == f"{STATEMENT_TIMEOUT_MS // 1000}s"
        conn = log._conns.current()
        assert conn.info.get_parameters().get("keepalives") == "1" or "keepalives=1" in conn.info.dsn


def test_a_slow_statement_is_cancelled_and_the_connection_survives(postgres_log_url: str) -> None:
    url = f"{postgres_log_url}&options=-c%20statement_timeout%3D200"
    with open_decision_log(url) as log:
        assert isinstance(log, PostgresDecisionLog)
        with pytest.raises(UnavailableError, match="statement timeout"):
            log._run(lambda cur: cur.execute("SELECT pg_sleep(2)"))
        assert log.ping() and log.counts() == {"decisions": 0, "feedback": 0}


def test_a_write_blocked_by_a_lock_fails_fast_instead_of_hanging(postgres_url: str, postgres_log_url: str) -> None:
    """Another session holds the decision table locked: a decision write gives up after the timeout (and the
    service spools it) instead of holding the request until the lock is released."""
    url = f"{postgres_log_url}&options=-c%20statement_timeout%3D300"
    with open_decision_log(url) as log:
        release = threading.Event()
        locked = threading.Event()

        def hold() -> None:
            with psycopg.connect(postgres_url) as other, other.transaction():
                other.execute(f"LOCK TABLE {log.decisions_table} IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert locked.wait(10)
            with pytest.raises(UnavailableError, match="statement timeout"):
                log.counts()
        finally:
            release.set()
            holder.join()
        assert log.counts()["decisions"] == 0


def test_retraining_reads_and_schema_work_are_exempt(postgres_log_url: str) -> None:
    url = f"{postgres_log_url}&options=-c%20statement_timeout%3D200"
    with open_decision_log(url) as log:
        assert isinstance(log, PostgresDecisionLog)
        with log.unbounded():
            log._run(lambda cur: cur.execute("SELECT pg_sleep(0.5)"))  # would be cancelled at 200 ms
            assert _show(log, "statement_timeout") == "0"
        assert _show(log, "statement_timeout") == "200ms"  # the bound is back for everything else
        assert log.training_rows() == []
        assert _show(log, "statement_timeout") == "200ms"
