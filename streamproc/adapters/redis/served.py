"""Adapter: the served-x log in Redis: the x each event was served (for the label join),
indexed per entity (for an erasure), and the trainer's watermark; one round trip per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
from redis.asyncio.cluster import RedisCluster

from streamproc.adapters.redis.calls import timed_call
from streamproc.adapters.redis.client import REDIS_ERRORS, AnyRedis, redis_failure
from streamproc.adapters.redis.stores import slot_groups, unlink_indexed
from streamproc.core.training import PARTITION_IDLE_MS, ServedX

# Each entity's index of the event ids whose x is logged, for an erasure: a sorted set by the
# wall time logged, trimmed of ids whose x has expired, expiring itself with the newest x.
# KEYS: one index per entity; ARGV: wall ms, ttl ms, then per key a JSON array of event ids.
_INDEX_SCRIPT = """
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local ids = cjson.decode(ARGV[i + 2])
  for j = 1, #ids do redis.call('ZADD', key, now, ids[j]) end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ttl)
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""


class RedisServedLog:
    """The x each event was served, under `namespace:x:<event id>` for the label join; kept
    for the labels' maximum delay. The first x logged for an event stays (SET NX): a replay
    never replaces what the model was asked about. Per entity, `namespace:xi:{<entity>}`
    indexes its event ids, so an erasure finds its x.

    The watermark: per clean-topic partition, the newest event time scored (ZADD GT: it only
    grows) and when it last moved (wall clock). The trainer's watermark is the slowest
    partition's among those that moved within `idle_ms`, so a partition read late (a backlog,
    a replay) holds labels back instead of having them given up; an idle one does not stall
    learning."""

    def __init__(self, client: AnyRedis, namespace: str, idle_ms: int = PARTITION_IDLE_MS) -> None:
        self._client = client
        self._prefix = f"{namespace}:x"
        self._index_prefix = f"{namespace}:xi"
        self._marks = f"{namespace}:watermark"
        self._moved = f"{namespace}:watermark:moved"
        self._idle_ms = idle_ms
        self._index_script = client.register_script(_INDEX_SCRIPT)

    def _index(self, entity: str) -> str:
        return f"{self._index_prefix}:{{{entity}}}"

    async def log(
        self,
        served: Sequence[tuple[str, ServedX]],
        ttl_ms: int,
        newest_ms: Mapping[int, int],
        wall_ms: int,
        entities: Mapping[str, Sequence[str]],
    ) -> None:
        """One pipelined round trip for the batch, the index's script call in it; on a Redis
        Cluster the script calls (one per slot) go before it."""
        if not served and not newest_ms:
            return
        in_pipeline = bool(entities) and not isinstance(self._client, RedisCluster)
        try:
            with timed_call("served_log"):
                if entities and not in_pipeline:
                    await self._index_by_slot(entities, ttl_ms, wall_ms)
                async with self._client.pipeline(transaction=False) as pipe:
                    if in_pipeline:  # redis-py loads the script for a pipeline of a single Redis
                        keys, args = self._index_call(entities, ttl_ms, wall_ms)
                        await self._index_script(keys, args, client=pipe)  # type: ignore[arg-type]
                    for event_id, x in served:
                        pipe.set(f"{self._prefix}:{event_id}", x.dump(), px=ttl_ms, nx=True)
                    if newest_ms:
                        marks = {str(p): t for p, t in newest_ms.items()}
                        pipe.zadd(self._marks, marks, gt=True)
                        pipe.zadd(self._moved, {p: wall_ms for p in marks})
                    await pipe.execute()
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis served-x write failed", exc) from exc

    def _index_call(
        self, entities: Mapping[str, Sequence[str]], ttl_ms: int, wall_ms: int
    ) -> tuple[list[str], list[bytes | int]]:
        """The index script's keys and arguments for `entities`."""
        keys = [self._index(entity) for entity in entities]
        args: list[bytes | int] = [wall_ms, ttl_ms]
        args += [orjson.dumps(list(event_ids)) for event_ids in entities.values()]
        return keys, args

    async def _index_by_slot(
        self, entities: Mapping[str, Sequence[str]], ttl_ms: int, wall_ms: int
    ) -> None:
        """On a Redis Cluster: one script call per slot (a script may touch only one)."""
        keys, args = self._index_call(entities, ttl_ms, wall_ms)
        for group in slot_groups(self._client, keys):
            group_args = [*args[:2], *(args[2 + i] for i in group)]
            await self._index_script([keys[i] for i in group], group_args)

    async def erase(self, entity: str) -> int:
        """The x of every event the entity's index holds, and the index."""
        return await unlink_indexed(self._client, self._index(entity), f"{self._prefix}:")

    async def fetch(self, event_ids: Sequence[str]) -> dict[str, ServedX]:
        if not event_ids:
            return {}
        try:
            with timed_call("served_fetch"):
                async with self._client.pipeline(transaction=False) as pipe:
                    for event_id in event_ids:
                        pipe.get(f"{self._prefix}:{event_id}")
                    replies = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis served-x read failed", exc) from exc
        return {
            event_id: ServedX.load(reply)
            for event_id, reply in zip(event_ids, replies, strict=True)
            if reply is not None
        }

    async def watermark(self, wall_ms: int, partitions: int | None = None) -> int | None:
        """None until something was scored; with `partitions` (the scored topic's), also
        until every partition has scored something, or the idle time has passed since the
        first did: at a replay's start, the first partitions read must not decide alone
        which labels are due (their events on the others are not scored yet)."""
        try:
            with timed_call("watermark"):
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.zrange(self._marks, 0, -1, withscores=True)
                    pipe.zrange(self._moved, 0, -1, withscores=True)
                    marks, moved = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis watermark read failed", exc) from exc
        if not marks:
            return None
        if partitions is not None and len(marks) < partitions:
            started = min(int(at) for _, at in moved) if moved else wall_ms
            if wall_ms - started <= self._idle_ms:
                return None
        active = {member for member, at in moved if wall_ms - at <= self._idle_ms}
        times = [int(t) for member, t in marks if member in active] or [int(marks[-1][1])]
        return min(times)
