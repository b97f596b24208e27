"""Adapter: Redis implementations of the stores, one round trip (one Lua call) per batch; each
erases a subject's keys without searching for them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import orjson
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from streamproc.adapters.redis.calls import timed_call
from streamproc.adapters.redis.client import (
    REDIS_ERRORS,
    AnyRedis,
    redis_failure,
)
from streamproc.core.dedupe import Claim, DedupeRules, DedupeVerdict, Sighting
from streamproc.core.features.state import EntityWrite, OffsetConflict
from streamproc.errors import InfraError

# Mirrors dedupe.judge: per claim, in order, in one atomic call. KEYS come in triples (id key,
# content key, the group's index); ARGV: window, id ttl, content ttl, then per claim its
# sighting ("partition|offset|occurred_at|event_id") and whether it has a content key.
# The index is what an erasure reads: per group (entity), every key written, scored by when
# it expires, trimmed of the expired, expiring itself with the longest-lived.
_CLAIM_SCRIPT = """
local window, id_ttl, content_ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local id_until, content_until = now + id_ttl, now + content_ttl
-- a sighting: 'v2|partition|offset|occurred|logged|id', or 'partition|offset|occurred|id'
-- from before log times: where it was read, its event time, its log time (nil: unknown)
local function parse(s)
  local p, o, occurred, logged = string.match(s, '^v2|(%d+)|(%d+)|(%-?%d+)|(%-?%d+)|')
  if p then return p .. '|' .. o, tonumber(occurred), tonumber(logged) end
  p, o, occurred = string.match(s, '^(%d+)|(%d+)|(%-?%d+)|')
  return p .. '|' .. o, tonumber(occurred), nil
end
local function within(a, b, ttl) return a == nil or b == nil or math.abs(a - b) <= ttl end
local out, indexes = {}, {}
for i = 1, #KEYS / 3 do
  local id_key, content_key, index = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local mine, has_content = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local my_where, my_time, my_log = parse(mine)
  local verdict, kept = '', {}
  local by_id = redis.call('GET', id_key)
  local id_where, _, id_log
  if by_id then id_where, _, id_log = parse(by_id) end
  if by_id and id_where ~= my_where and within(id_log, my_log, id_ttl) then
    verdict = 'retry|' .. by_id
  else
    if not by_id or id_where ~= my_where then  -- none, or forgotten: this one is the first
      redis.call('SET', id_key, mine, 'PX', id_ttl)
      kept = {id_until, id_key}
    end
    if has_content == '1' then
      local first = redis.call('GET', content_key)
      local first_where, first_time, first_log
      if first then first_where, first_time, first_log = parse(first) end
      if first and first_where ~= my_where and math.abs(my_time - first_time) <= window
         and within(first_log, my_log, content_ttl) then
        verdict = 'resubmission|' .. first
      else
        redis.call('SET', content_key, mine, 'PX', content_ttl)
        kept[#kept + 1] = content_until
        kept[#kept + 1] = content_key
      end
    end
  end
  if #kept > 0 then
    redis.call('ZADD', index, unpack(kept))
    indexes[index] = true
  end
  out[i] = verdict
end
local longest = math.max(id_ttl, content_ttl)
for index in pairs(indexes) do
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  redis.call('PEXPIRE', index, longest)
end
return out
"""


def features_namespace(namespace: str) -> str:
    """Where a deployment's feature hashes are: shared by its pipelines (keys carry the view)."""
    return f"{namespace}:features"


def pipeline_namespace(namespace: str, pipeline: str) -> str:
    """Where one pipeline's dedupe memory, unit statistics and served x are."""
    return f"{namespace}:{pipeline}"


async def unlink_indexed(client: AnyRedis, index: str, prefix: str = "") -> int:
    """UNLINK the keys (`prefix` + member) a sorted-set `index` lists, and the index; how many
    listed keys there were. Keys of many slots are split by the cluster client."""
    try:
        members = cast(list[bytes], await client.zrange(index, 0, -1))
        if not members:
            return 0
        deleted = int(await client.unlink(*(prefix + _text(m) for m in members), index))
    except REDIS_ERRORS as exc:
        raise redis_failure(f"Redis erase of {index} failed", exc) from exc
    return deleted - 1  # the index itself


def slot_groups(client: AnyRedis, keys: Sequence[str]) -> list[list[int]]:
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
        tags = [self._tag(claim.group) for claim in claims]
        verdicts: list[DedupeVerdict] = [DedupeVerdict()] * len(claims)
        for group in slot_groups(self._client, tags):
            keys: list[str] = []
            args: list[str | int] = [rules.window_ms, rules.id_ttl_ms, rules.content_ttl_ms]
            for index in group:
                claim, tag = claims[index], tags[index]
                id_key = f"{tag}:id:{claim.sighting.event_id}"
                content = claim.fingerprint
                keys += [id_key, f"{tag}:fp:{content}" if content else id_key, f"{tag}:index"]
                args += [claim.sighting.encode(), 1 if content else 0]
            try:
                with timed_call("dedupe"):
                    replies = await self._script(keys=keys, args=args)
            except REDIS_ERRORS as exc:
                raise redis_failure("Redis dedupe call failed", exc) from exc
            for index, reply in zip(group, replies, strict=True):
                verdicts[index] = _verdict(reply)
        return verdicts

    async def erase(self, entity: str) -> int:
        """The ids and fingerprints remembered for `entity` (its claims' group), as its index
        lists them, and the index."""
        return await unlink_indexed(self._client, f"{self._tag(entity)}:index")

    def _tag(self, group: str) -> str:
        return f"{self._prefix}:{{{group}}}"


def _verdict(reply: bytes | str) -> DedupeVerdict:
    text = reply.decode() if isinstance(reply, bytes) else reply
    if not text:
        return DedupeVerdict()
    kind, _, first = text.partition("|")
    if kind not in ("retry", "resubmission"):
        raise InfraError(f"unexpected reply from the dedupe script: {text!r}")
    return DedupeVerdict(kind, Sighting.decode(first))  # type: ignore[arg-type]


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

    async def delete(self, keys: Sequence[str]) -> int:
        """An erased subject's hashes (one entity's keys share a slot: one call)."""
        if not keys:
            return 0
        try:
            return int(await self._client.unlink(*(self._key(key) for key in keys)))
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis feature delete failed", exc) from exc

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, str]]:
        try:
            with timed_call("features_load"):
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
        for group in slot_groups(self._client, keys) if writes else []:
            args = [_write_arg(writes[index]) for index in group]
            try:
                with timed_call("features_save"):
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
            with timed_call("lease"):
                return int(await self._script(keys=self._keys, args=[self._holder, ttl_ms]))
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis lease call failed", exc) from exc
