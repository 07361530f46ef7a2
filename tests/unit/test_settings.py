"""Settings: the Redis URL becomes Feast's connection string, or a one-line error naming the setting."""

from __future__ import annotations

import pytest

from nextbest.errors import ConfigError
from nextbest.settings import _redis_connection_string, load_settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "127.0.0.1:6379,db=0"),
        ("redis://cache", "cache:6379,db=0"),
        ("redis://:secret@cache:6380/2", "cache:6380,db=2,password=secret"),
        # TLS, an ACL user, a percent-encoded password and client options from the query
        (
            "rediss://app:p%40ss%3Aw%2Fd@cache.example:6380/1?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem",
            "cache.example:6380,db=1,ssl=true,username=app,password=p@ss:w/d,ssl_cert_reqs=required,"
            "ssl_ca_certs=/etc/ca.pem",
        ),
    ],
)
def test_redis_urls_become_feast_connection_strings(url: str, expected: str) -> None:
    assert _redis_connection_string(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://cache:6379", "expected redis://"),
        ("redis://cache/zero", "database must be a number"),
        ("redis://app:a%2Cb@cache/0", "password: Feast's Redis connection string cannot carry ','"),
        ("redis://cache:99999/0", "bad port"),
    ],
)
def test_a_redis_url_feast_cannot_use_is_rejected_at_load(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="redis_url") as err:
        load_settings(redis_url=url)
    assert problem in str(err.value)
