"""Adapter: Redis implementations of the stores, one round trip (one Lua call) per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from streamproc.adapters.redis.client import (
    REDIS_ERRORS,
    AnyRedis,
    redis_failure,
    sync_redis_client,
)
from streamproc.config.connections import TlsFiles, redact_url
from streamproc.core.dedupe import Claim, DedupeRules, DedupeVerdict, Sighting
from streamproc.core.features.state import EntityWrite, OffsetConflict
from streamproc.core.training import PARTITION_IDLE_MS, ServedX
from streamproc.errors import InfraError

# Mirrors dedupe.judge: per claim, in order, in one atomic call. KEYS come in pairs
# (id key, content key); ARGV: window, id ttl, content ttl, then per claim its sighting
# ("partition|offset|occurred_at|event_id") and whether it has a content key.
_CLAIM_SCRIPT = """
local window, id_ttl, content_ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local function where(s) return string.match(s, '^(%d+|%d+)|') end
local function when(s) return tonumber(string.match(s, '^%d+|%d+|(%-?%d+)|')) end
local out = {}
for i = 1, #KEYS / 2 do
  local id_key, content_key = KEYS[2 * i - 1], KEYS[2 * i]
  local mine, has_content = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local verdict = ''
  local by_id = redis.call('GET', id_key)
  if by_id and where(by_id) ~= where(mine) then
    verdict = 'retry|' .. by_id
  else
    if not by_id then redis.call('SET', id_key, mine, 'PX', id_ttl) end
    if has_content == '1' then
      local first = redis.call('GET', content_key)
      if first and where(first) ~= where(mine)
         and math.abs(when(mine) - when(first)) <= window then
        verdict = 'resubmission|' .. first
      else
        redis.call('SET', content_key, mine, 'PX', content_ttl)
      end
    end
  end
  out[i] = verdict
end
return out
"""


def _slot_groups(client: AnyRedis, keys: Sequence[str]) -> list[list[int]]:
    """Indexes of `keys` grouped by cluster slot, in order: a script may only touch one slot.
    A single Redis takes them all at once."""
    if not isinstance(client, RedisCluster):
        return [list(range(len(keys)))]
    groups: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key_slot(key.encode()), []).append(index)
    return list(groups.values())


class RedisSeenStore:
    """Dedupe memory in Redis under `<namespace>:dd:`; keys expire (PX) by the rules' TTLs.

    A claim's keys carry its group (the entity) as a hash tag, so on a Redis Cluster they
    share a slot; claims are sent one script call per slot (one call on a single Redis).
    """

    def __init__(self, client: AnyRedis, namespace: str) -> None:
        self._client = client
        self._prefix = f"{namespace}:dd"
        self._script = client.register_script(_CLAIM_SCRIPT)

    async def claim(self, claims: Sequence[Claim], rules: DedupeRules) -> list[DedupeVerdict]:
        if not claims:
            return []
        tags = [f"{self._prefix}:{{{claim.group}}}" for claim in claims]
        verdicts: list[DedupeVerdict] = [DedupeVerdict()] * len(claims)
        for group in _slot_groups(self._client, tags):
            keys: list[str] = []
            args: list[str | int] = [rules.window_ms, rules.id_ttl_ms, rules.content_ttl_ms]
            for index in group:
                claim, tag = claims[index], tags[index]
                id_key = f"{tag}:id:{claim.sighting.event_id}"
                content = claim.fingerprint
                keys += [id_key, f"{tag}:fp:{content}" if content else id_key]
                args += [claim.sighting.encode(), 1 if content else 0]
            try:
                replies = await self._script(keys=keys, args=args)
            except REDIS_ERRORS as exc:
                raise redis_failure("Redis dedupe call failed", exc) from exc
            for index, reply in zip(group, replies, strict=True):
                verdicts[index] = _verdict(reply)
        return verdicts


def _verdict(reply: bytes | str) -> DedupeVerdict:
    text = reply.decode() if isinstance(reply, bytes) else reply
    if not text:
        return DedupeVerdict()
    kind, _, first = text.partition("|")
    if kind not in ("retry", "resubmission"):
        raise InfraError(f"unexpected reply from the dedupe script: {text!r}")
    return DedupeVerdict(kind, Sighting.decode(first))  # type: ignore[arg-type]


_UNLINK_SLICE = 1_000  # keys per UNLINK: each call blocks Redis for only a moment


def delete_namespace(
    url: str, namespace: str, cluster: bool = False, tls: TlsFiles | None = None
) -> int:
    """Delete every key under `namespace:` (a finished demo or benchmark run); SCAN and UNLINK
    in slices, so a Redis that serves others is never blocked for long."""
    client = sync_redis_client(url, cluster, tls)
    deleted = 0

    def unlink(keys: list[bytes]) -> int:
        if not cluster:
            return int(client.unlink(*keys))
        return sum(int(client.unlink(key)) for key in keys)  # keys of many slots

    try:
        keys: list[bytes] = []
        for key in client.scan_iter(match=f"{namespace}:*", count=10_000):
            keys.append(key)
            if len(keys) == _UNLINK_SLICE:
                deleted += unlink(keys)
                keys.clear()
        if keys:
            deleted += unlink(keys)
    except REDIS_ERRORS as exc:
        where = f"Redis at {redact_url(url)}: cannot delete {namespace}:*"
        raise redis_failure(where, exc) from exc
    finally:
        client.close()
    return deleted


# Applies a batch of feature writes only if every entity's offset marks still read what the
# batch was computed from (another writer, e.g. a zombie after a rebalance, aborts it whole).
# ARGV[i], for KEYS[i]: a JSON array [ttl_ms, [guard field, value or "" for absent, ...],
# [field, value, ...] to set, [field, ...] to delete]. One argument per key, not one per field:
# redis-py packs each argument in Python, which cost more than the script itself.
_SAVE_SCRIPT = """
local plan = {}
for i, key in ipairs(KEYS) do
  local write = cjson.decode(ARGV[i])
  local guards = write[2]
  for g = 1, #guards, 2 do
    local current = redis.call('HGET', key, guards[g]) or ''
    if current ~= guards[g + 1] then return redis.error_reply('CONFLICT ' .. key) end
  end
  plan[i] = write
end
for i, key in ipairs(KEYS) do
  local write = plan[i]
  if #write[3] > 0 then redis.call('HSET', key, unpack(write[3])) end
  if #write[4] > 0 then redis.call('HDEL', key, unpack(write[4])) end
  redis.call('PEXPIRE', key, write[1])
end
return #KEYS
"""
_ABSENT = ""  # offsets are never empty


class RedisFeatureStore:
    """Feature hashes under `namespace:`; one pipelined read and one script call per batch."""

    def __init__(self, client: AnyRedis, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        self._save = client.register_script(_SAVE_SCRIPT)

    def _key(self, key: str) -> str:
        return f"{self._namespace}:{key}"

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, str]]:
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(self._key(key))
                replies = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis feature read failed", exc) from exc
        return {
            key: {_text(name): _text(value) for name, value in reply.items()}
            for key, reply in zip(keys, replies, strict=True)
            if reply
        }

    async def save(self, writes: Sequence[EntityWrite], wall_ms: int) -> None:
        """One script call (one per slot on a Redis Cluster: each entity's keys share one)."""
        keys = [self._key(write.key) for write in writes]
        for group in _slot_groups(self._client, keys) if writes else []:
            args = [_write_arg(writes[index]) for index in group]
            try:
                await self._save(keys=[keys[index] for index in group], args=args)
            except REDIS_ERRORS as exc:
                if str(exc).startswith("CONFLICT"):
                    raise OffsetConflict(str(exc)) from exc
                raise redis_failure("Redis feature write failed", exc) from exc


def _write_arg(write: EntityWrite) -> bytes:
    guards = [part for name, value in write.expected.items() for part in (name, value or _ABSENT)]
    sets = [part for pair in write.set.items() for part in pair]
    return orjson.dumps([write.ttl_ms, guards, sets, write.delete])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisServedLog:
    """The x each event was served, under `namespace:x:<event id>` for the label join; kept
    for the labels' maximum delay. The first x logged for an event stays (SET NX): a replay
    never replaces what the model was asked about.

    The watermark: per clean-topic partition, the newest event time scored (ZADD GT: it only
    grows) and when it last moved (wall clock). The trainer's watermark is the slowest
    partition's among those that moved within `idle_ms`, so a partition read late (a backlog,
    a replay) holds labels back instead of having them given up; an idle one does not stall
    learning."""

    def __init__(self, client: AnyRedis, namespace: str, idle_ms: int = PARTITION_IDLE_MS) -> None:
        self._client = client
        self._prefix = f"{namespace}:x"
        self._marks = f"{namespace}:watermark"
        self._moved = f"{namespace}:watermark:moved"
        self._idle_ms = idle_ms

    async def log(
        self,
        served: Sequence[tuple[str, ServedX]],
        ttl_ms: int,
        newest_ms: Mapping[int, int],
        wall_ms: int,
    ) -> None:
        """One pipelined round trip for the batch."""
        if not served and not newest_ms:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for event_id, x in served:
                    pipe.set(f"{self._prefix}:{event_id}", x.dump(), px=ttl_ms, nx=True)
                if newest_ms:
                    marks = {str(p): t for p, t in newest_ms.items()}
                    pipe.zadd(self._marks, marks, gt=True)
                    pipe.zadd(self._moved, {p: wall_ms for p in marks})
                await pipe.execute()
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis served-x write failed", exc) from exc

    async def fetch(self, event_ids: Sequence[str]) -> dict[str, ServedX]:
        if not event_ids:
            return {}
        try:
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

    async def watermark(self, wall_ms: int) -> int | None:
        """None until something was scored."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zrange(self._marks, 0, -1, withscores=True)
                pipe.zrange(self._moved, 0, -1, withscores=True)
                marks, moved = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis watermark read failed", exc) from exc
        if not marks:
            return None
        active = {member for member, at in moved if wall_ms - at <= self._idle_ms}
        times = [int(t) for member, t in marks if member in active] or [int(marks[-1][1])]
        return min(times)


# Take or keep the trainer's lease. KEYS: lease, epoch counter; ARGV: holder, ttl ms.
# A new holder gets a new epoch (its snapshots outrank any zombie's); the same holder coming
# back (a restarted worker with the same id) keeps its own.
_LEASE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if not current then
  local epoch = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. epoch, 'PX', ARGV[2])
  return epoch
end
local holder, epoch = string.match(current, '^(.*)|(%d+)$')
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(epoch)
end
return 0
"""


class RedisLease:
    """One trainer per pipeline: whoever holds the lease learns; others only serve."""

    def __init__(self, client: AnyRedis, namespace: str, name: str, holder: str) -> None:
        tag = f"{namespace}:lease:{{{name}}}"  # both keys in one cluster slot
        self._keys = [tag, f"{tag}:epoch"]
        self._holder = holder
        self._script = client.register_script(_LEASE_SCRIPT)

    async def hold(self, ttl_ms: int) -> int:
        """The epoch held (taken or renewed), 0 when another holder has it."""
        try:
            return int(await self._script(keys=self._keys, args=[self._holder, ttl_ms]))
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis lease call failed", exc) from exc
