"""Cleaning up after tests on the shared Redis server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def delete_project_keys(redis_url: str, project: str) -> None:
    """Delete a Feast project's online rows from Redis (their keys end with the project name)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    pattern = b"*" + project.encode()
    for batch in _chunks(client.scan_iter(match=pattern, count=1000), 500):
        client.delete(*batch)
    assert not list(client.scan_iter(match=pattern)), "keys of the test project are left in Redis"
    client.close()


def _chunks(items: Any, size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
