"""Edge: Redis implementations of the stores, one round trip (one Lua call) per batch."""

from __future__ import annotations

from collections.abc import Sequence

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from streamproc.dedupe import Claim, DedupeRules, Sighting, Verdict
from streamproc.errors import InfraError
from streamproc.features import EntityWrite, OffsetConflict

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


def redis_client(url: str) -> aioredis.Redis:
    """A client from a redis:// or rediss:// (TLS) URL; ACL user and password go in the URL
    (redis://user:password@host:6379/0), TLS options in its query (ssl_cert_reqs=required)."""
    return aioredis.Redis.from_url(url)


class RedisSeenStore:
    """Dedupe memory in Redis under `<namespace>:dd:`; keys expire (PX) by the rules' TTLs."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._client = client
        self._prefix = f"{namespace}:dd"
        self._script = client.register_script(_CLAIM_SCRIPT)

    async def claim(self, claims: Sequence[Claim], rules: DedupeRules) -> list[Verdict]:
        if not claims:
            return []
        keys: list[str] = []
        args: list[str | int] = [rules.window_ms, rules.id_ttl_ms, rules.content_ttl_ms]
        for claim in claims:
            id_key = f"{self._prefix}:id:{claim.sighting.event_id}"
            content = claim.fingerprint
            keys += [id_key, f"{self._prefix}:fp:{content}" if content else id_key]
            args += [claim.sighting.encode(), 1 if content else 0]
        try:
            replies = await self._script(keys=keys, args=args)
        except RedisError as exc:
            raise InfraError(f"Redis dedupe call failed: {exc}") from exc
        return [_verdict(reply) for reply in replies]


def _verdict(reply: bytes | str) -> Verdict:
    text = reply.decode() if isinstance(reply, bytes) else reply
    if not text:
        return Verdict()
    kind, _, first = text.partition("|")
    if kind not in ("retry", "resubmission"):
        raise InfraError(f"unexpected reply from the dedupe script: {text!r}")
    return Verdict(kind, Sighting.decode(first))  # type: ignore[arg-type]


def delete_namespace(url: str, namespace: str) -> int:
    """Delete every key under `namespace:` (a finished demo or benchmark run); SCAN and UNLINK
    in slices, so a Redis that serves others is never blocked for long."""
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        keys: list[bytes] = []
        for key in client.scan_iter(match=f"{namespace}:*", count=10_000):
            keys.append(key)
            if len(keys) == 1_000:
                deleted += int(client.unlink(*keys))
                keys.clear()
        if keys:
            deleted += int(client.unlink(*keys))
    except RedisError as exc:
        raise InfraError(f"Redis at {url}: cannot delete {namespace}:*: {exc}") from exc
    finally:
        client.close()
    return deleted


# Applies a batch of feature writes only if every entity's offset marks still read what the
# batch was computed from (another writer, e.g. a zombie after a rebalance, aborts it whole).
# ARGV per key, in KEYS order: ttl_ms, n guards, (field, value or "" for absent)...,
# n sets, (field, value)..., n deletes, field...
_SAVE_SCRIPT = """
local at = 1
local plan = {}
for i, key in ipairs(KEYS) do
  local ttl = ARGV[at]; local guards = tonumber(ARGV[at + 1]); at = at + 2
  for g = 1, guards do
    local current = redis.call('HGET', key, ARGV[at]) or ''
    if current ~= ARGV[at + 1] then return redis.error_reply('CONFLICT ' .. key) end
    at = at + 2
  end
  local sets = tonumber(ARGV[at]); at = at + 1
  local set_from = at; at = at + 2 * sets
  local deletes = tonumber(ARGV[at]); at = at + 1
  local delete_from = at; at = at + deletes
  plan[i] = {ttl, set_from, sets, delete_from, deletes}
end
for i, key in ipairs(KEYS) do
  local p = plan[i]
  if p[3] > 0 then redis.call('HSET', key, unpack(ARGV, p[2], p[2] + 2 * p[3] - 1)) end
  if p[5] > 0 then redis.call('HDEL', key, unpack(ARGV, p[4], p[4] + p[5] - 1)) end
  redis.call('PEXPIRE', key, p[1])
end
return #KEYS
"""
_ABSENT = ""  # offsets are never empty


class RedisFeatureStore:
    """Feature hashes under `namespace:`; one pipelined read and one script call per batch."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
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
        except RedisError as exc:
            raise InfraError(f"Redis feature read failed: {exc}") from exc
        return {
            key: {_text(name): _text(value) for name, value in reply.items()}
            for key, reply in zip(keys, replies, strict=True)
            if reply
        }

    async def save(self, writes: Sequence[EntityWrite], wall_ms: int) -> None:
        if not writes:
            return
        args: list[str | int] = []
        for write in writes:
            args += [write.ttl_ms, len(write.expected)]
            for name, value in write.expected.items():
                args += [name, _ABSENT if value is None else value]
            args.append(len(write.set))
            for name, value in write.set.items():
                args += [name, value]
            args.append(len(write.delete))
            args += write.delete
        try:
            await self._save(keys=[self._key(w.key) for w in writes], args=args)
        except RedisError as exc:
            if str(exc).startswith("CONFLICT"):
                raise OffsetConflict(str(exc)) from exc
            raise InfraError(f"Redis feature write failed: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
