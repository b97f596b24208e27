"""Adapter: the unit-switch detector's shared state in Redis, one script call per batch (which
reads the state back only when asked).

Three hashes and a guard under one hash tag (one slot on a Redis Cluster):
`<namespace>:{units}:counts` (source, field, version, log10 bin → count),
`:steps` (group → settled step), `:references` ((source, field) → reference version) and
`:guard` (source partition → newest offset counted), so a replayed batch counts nothing twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from streamproc.adapters.redis.calls import timed_call
from streamproc.adapters.redis.client import REDIS_ERRORS, AnyRedis, redis_failure
from streamproc.core.unitswitch import GroupKey, UnitStats, UnitStatsUpdate

# KEYS: counts, steps, references, guard. ARGV: n sightings, then (partition, offset, field)
# per sighting; n steps, then (field, step); n references, then (field, version); then 1 to
# read the whole state back, 0 for nothing (most batches: the state grows with the sources'
# versions, and reading and parsing it was the clean stage's biggest cost per batch).
# Sightings are judged against the guard as it was before this call: one record may carry
# several fields at the same offset.
_EXCHANGE_SCRIPT = """
local at = 2
local before, newest = {}, {}
for i = 1, tonumber(ARGV[1]) do
  local p, offset, f = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 2]
  at = at + 3
  if before[p] == nil then before[p] = tonumber(redis.call('HGET', KEYS[4], p) or '-1') end
  if offset > before[p] then
    redis.call('HINCRBY', KEYS[1], f, 1)
    if newest[p] == nil or offset > newest[p] then newest[p] = offset end
  end
end
for p, offset in pairs(newest) do redis.call('HSET', KEYS[4], p, string.format('%d', offset)) end
for k = 2, 3 do
  local n = tonumber(ARGV[at]); at = at + 1
  for i = 1, n do redis.call('HSETNX', KEYS[k], ARGV[at], ARGV[at + 1]); at = at + 2 end
end
if ARGV[at] ~= '1' then return {} end
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),
        redis.call('HGETALL', KEYS[3])}
"""
_SEP = "\x1f"  # between the parts of a field name: versions are free text


class RedisUnitStatsStore:
    """The unit-switch counts every worker of a deployment adds to and reads back, on Redis."""

    def __init__(self, client: AnyRedis, namespace: str) -> None:
        prefix = f"{namespace}:{{units}}"
        self._keys = [f"{prefix}:{name}" for name in ("counts", "steps", "references", "guard")]
        self._script = client.register_script(_EXCHANGE_SCRIPT)

    async def send(self, update: UnitStatsUpdate) -> None:
        await self._call(update, reply=False)

    async def exchange(self, update: UnitStatsUpdate) -> UnitStats:
        counts, steps, references = await self._call(update, reply=True)
        return _stats(counts, steps, references)

    async def _call(self, update: UnitStatsUpdate, reply: bool) -> list[list[bytes]]:
        args: list[str | int] = [len(update.sightings)]
        for s in update.sightings:
            args += [s.partition, s.offset, _SEP.join((*s.group, str(s.bin)))]
        args.append(len(update.steps))
        for group, step in update.steps.items():
            args += [_SEP.join(group), repr(step)]
        args.append(len(update.references))
        for key, version in update.references.items():
            args += [_SEP.join(key), version]
        args.append(1 if reply else 0)
        try:
            with timed_call("units"):
                replies: list[list[bytes]] = await self._script(keys=self._keys, args=args)
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis unit-switch state call failed", exc) from exc
        return replies


def _stats(
    counts: Sequence[bytes], steps: Sequence[bytes], references: Sequence[bytes]
) -> UnitStats:
    stats = UnitStats()
    for field, value in _pairs(counts):
        source, name, version, bin_ = field.split(_SEP)
        stats.counts.setdefault((source, name, version), Counter())[int(bin_)] = int(value)
    for field, value in _pairs(steps):
        source, name, version = field.split(_SEP)
        group: GroupKey = (source, name, version)
        stats.steps[group] = float(value)
    for field, value in _pairs(references):
        source, name = field.split(_SEP)
        stats.references[(source, name)] = value
    return stats


def _pairs(flat: Sequence[bytes]) -> list[tuple[str, str]]:
    texts = [item.decode() if isinstance(item, bytes) else str(item) for item in flat]
    return list(zip(texts[::2], texts[1::2], strict=True))
