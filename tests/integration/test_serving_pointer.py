"""The serving pointer and the versions in a real Redis: changes only from what was read, a
version's namespace dropped without touching another's, retirement after the grace period,
and no rollback to a retired version."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import pytest
import redis

from streamproc.adapters.redis.client import AnyRedis, redis_client
from streamproc.adapters.redis.serving import PointerMoved, RedisServingPointer, RedisVersions
from streamproc.core.serving import Serving
from streamproc.tools.versions import RefusedSwitch, Switch, promote, rollback
from streamproc.worker.retirement import Retirement
from tests.integration.conftest import Stack

T = TypeVar("T")


def _run(stack: Stack, action: Callable[[AnyRedis], Awaitable[T]]) -> T:
    async def run() -> T:
        client = redis_client(stack.redis_url)
        try:
            return await action(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


@pytest.fixture
def base(stack: Stack) -> Iterator[str]:
    name = f"it-serving-{uuid.uuid4().hex[:8]}"
    yield name
    plain = redis.Redis.from_url(stack.redis_url)
    for key in plain.scan_iter(match=f"{name}:*"):
        plain.delete(key)
    plain.close()


def test_the_pointer_changes_only_from_what_was_read(stack: Stack, base: str) -> None:
    async def act(client: AnyRedis) -> tuple[Serving, Serving]:
        pointer = RedisServingPointer(client, base)
        unset = await pointer.read()
        promoted = unset.promoted("v2", now_ms=1_000, grace_ms=10)
        await pointer.replace(unset, promoted)
        with pytest.raises(PointerMoved):  # a second operator, deciding on the old pointer
            await pointer.replace(unset, unset.promoted("v3", now_ms=2_000, grace_ms=10))
        return unset, await pointer.read()

    unset, now = _run(stack, act)
    assert unset == Serving()
    assert (now.version, now.previous, now.cutover_ms) == ("v2", "v1", 6_000)


def test_dropping_v1_leaves_the_other_versions_and_the_pointer(stack: Stack, base: str) -> None:
    plain = redis.Redis.from_url(stack.redis_url)
    mine = [f"{base}:features:{{a}}:orders", f"{base}:shop_orders:dd:{{x}}:id:1"]
    others = [f"{base}:v2:features:{{a}}:orders", f"{base}:serving", f"{base}:v12:x"]
    for key in mine + others:
        plain.set(key, "1")
    plain.hset(f"{base}:versions", "v1", "{}")

    dropped = _run(stack, lambda client: RedisVersions(client, base).drop("v1"))
    assert dropped == len(mine)
    assert [plain.exists(key) for key in mine] == [0, 0]
    assert [plain.exists(key) for key in others] == [1, 1, 1]
    assert not plain.hexists(f"{base}:versions", "v1")
    plain.close()


def test_the_serving_versions_workers_retire_the_previous_one_after_its_grace(
    stack: Stack, base: str
) -> None:
    plain = redis.Redis.from_url(stack.redis_url)
    plain.set(f"{base}:features:{{a}}:orders", "1")
    plain.set(f"{base}:v2:features:{{a}}:orders", "1")

    async def act(client: AnyRedis) -> tuple[str | None, str | None, Serving]:
        pointer, versions = RedisServingPointer(client, base), RedisVersions(client, base)
        await versions.record("v1", {"pipeline": "p1"})
        await versions.record("v2", {"pipeline": "p2"})
        await pointer.replace(Serving(), Serving().promoted("v2", now_ms=0, grace_ms=1))
        by_v1 = await Retirement(pointer, versions, "v1").retire_due()  # v1 does not serve
        by_v2 = await Retirement(pointer, versions, "v2").retire_due()
        return by_v1, by_v2, await pointer.read()

    by_v1, by_v2, after = _run(stack, act)
    assert (by_v1, by_v2, after.retired) == (None, "v1", "v1")
    assert not plain.exists(f"{base}:features:{{a}}:orders")
    assert plain.exists(f"{base}:v2:features:{{a}}:orders")
    plain.close()

    def switch(client: AnyRedis) -> Switch:
        pointer, versions = RedisServingPointer(client, base), RedisVersions(client, base)
        return Switch(pointer, versions, 1000, lambda _v: 0, lambda _v: None, io.StringIO())

    async def back(client: AnyRedis) -> None:
        await rollback(switch(client))

    with pytest.raises(RefusedSwitch, match="v1 was retired"):
        _run(stack, back)

    async def again(client: AnyRedis) -> None:
        await promote(switch(client), "v1", force=False, caught_up_records=10)

    with pytest.raises(RefusedSwitch, match="retired"):
        _run(stack, again)
