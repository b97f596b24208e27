"""A finished run's namespace is deleted, and nothing outside it."""

from __future__ import annotations

import uuid

import redis

from streamproc.adapters.redis.sweep import delete_namespace
from tests.integration.conftest import Stack


def test_only_the_namespace_is_deleted(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    run = uuid.uuid4().hex
    mine = {f"{run}:shop_orders:id:{i}": i for i in range(2_500)}  # more than one UNLINK slice
    theirs = {f"{run}x:keep": 1, f"other:{run}:keep": 2}
    client.mset({**mine, **theirs})
    try:
        assert delete_namespace(stack.redis_url, run) == len(mine)
        assert client.exists(*mine) == 0
        assert client.exists(*theirs) == len(theirs)
    finally:
        client.delete(*theirs)
        client.close()
