"""The served-x log and the trainer's watermark on the real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from streamproc.adapters.redis.client import redis_client
from streamproc.adapters.redis.served import RedisServedLog
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.core.training import ServedX
from tests.integration.conftest import Stack


@pytest.fixture
async def log(stack: Stack) -> AsyncIterator[RedisServedLog]:
    """A served log of a namespace of its own, deleted after."""
    namespace = f"it-served-{uuid.uuid4().hex[:8]}"
    client = redis_client(stack.redis_url)
    try:
        yield RedisServedLog(client, namespace, idle_ms=60_000)
    finally:
        await client.aclose()
        delete_namespace(stack.redis_url, namespace)


async def test_the_first_x_stays_and_the_slowest_active_partition_sets_the_watermark(
    log: RedisServedLog,
) -> None:
    assert await log.watermark(wall_ms=0) is None
    first, replayed = (
        ServedX({"a": 1.0}, {"m": 0.2}, 100, 3, 40),
        ServedX({"a": 9.0}, {}, 100, 4),
    )
    await log.log(
        [("e1", first)], 60_000, {0: 5_000, 1: 2_000}, wall_ms=1_000, entities={"c1": ["e1"]}
    )
    await log.log(  # a replay
        [("e1", replayed)], 60_000, {0: 4_000}, wall_ms=2_000, entities={"c1": ["e1"]}
    )
    assert await log.fetch(["e1", "nobody"]) == {"e1": first}
    assert await log.watermark(wall_ms=2_000) == 2_000  # partition 1 is behind
    await log.log([], 60_000, {1: 7_000}, wall_ms=3_000, entities={})
    assert await log.watermark(wall_ms=3_000) == 5_000  # now partition 0 is
    # partition 0 idle for more than a minute: it no longer holds learning back
    assert await log.watermark(wall_ms=2_000 + 60_001) == 7_000


async def test_no_label_is_due_until_every_partition_has_scored_or_the_idle_time_passed(
    log: RedisServedLog,
) -> None:
    await log.log([], 60_000, {0: 5_000, 1: 9_000}, wall_ms=1_000, entities={})
    assert await log.watermark(wall_ms=1_000) == 5_000  # the topic's count not known
    assert await log.watermark(wall_ms=1_000, partitions=3) is None  # partition 2 not yet
    # a partition with nothing to score holds labels back for the idle time only (then
    # the others are idle as well here: the newest mark)
    assert await log.watermark(wall_ms=1_000 + 60_001, partitions=3) == 9_000
    await log.log([], 60_000, {2: 3_000}, wall_ms=2_000, entities={})
    assert await log.watermark(wall_ms=2_000, partitions=3) == 3_000
