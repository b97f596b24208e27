"""Adapters: the in-memory stores, for run-file, the benchmarks and tests: the same bytes and
guards as Redis, no expiry."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from streamproc.core.dedupe import Claim, DedupeRules, DedupeVerdict, Sighting, judge
from streamproc.core.features.state import EntityWrite, OffsetConflict
from streamproc.core.training import ServedX
from streamproc.core.unitswitch import UnitStats, UnitStatsUpdate


class InMemoryFeatureStore:
    """The FeatureStore for files and tests: the same hashes, the same guard, no expiry."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, str]]:
        return {key: dict(self.hashes[key]) for key in keys if key in self.hashes}

    async def save(self, writes: Sequence[EntityWrite], wall_ms: int) -> None:
        for write in writes:
            current = self.hashes.get(write.key, {})
            if any(current.get(name) != value for name, value in write.expected.items()):
                raise OffsetConflict(write.key)
        for write in writes:
            fields = self.hashes.setdefault(write.key, {})
            fields.update(write.set)
            for name in write.delete:
                fields.pop(name, None)

    async def delete(self, keys: Sequence[str]) -> int:
        return sum(self.hashes.pop(key, None) is not None for key in keys)


class InMemorySeenStore:
    """The SeenStore for files and tests; keeps everything (no expiry) for one run. Like the
    Redis one, it remembers ids and fingerprints per claim group (the entity)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], Sighting] = {}
        self._contents: dict[tuple[str, str], Sighting] = {}

    async def claim(self, claims: Sequence[Claim], rules: DedupeRules) -> list[DedupeVerdict]:
        verdicts = []
        for claim in claims:
            id_key = (claim.group, claim.sighting.event_id)
            content_key = (claim.group, claim.fingerprint or "")
            content = self._contents.get(content_key) if claim.fingerprint else None
            verdict, write_id, write_content = judge(claim, self._ids.get(id_key), content, rules)
            if write_id:
                self._ids[id_key] = claim.sighting
            if write_content and claim.fingerprint is not None:
                self._contents[content_key] = claim.sighting
            verdicts.append(verdict)
        return verdicts

    async def erase(self, entity: str) -> int:
        """What was remembered for claims of the group `entity`."""
        erased = 0
        for memory in (self._ids, self._contents):
            for key in [key for key in memory if key[0] == entity]:
                del memory[key]
                erased += 1
        return erased


class InMemoryUnitStatsStore:
    """The UnitStatsStore of one process (files, tests): the Redis one's rules, in a dict."""

    def __init__(self) -> None:
        self._stats = UnitStats()
        self._guard: dict[int, int] = {}

    async def exchange(self, update: UnitStatsUpdate) -> UnitStats:
        await self.send(update)
        return _copied(self._stats)

    async def send(self, update: UnitStatsUpdate) -> None:
        before = dict(self._guard)
        for sighting in update.sightings:
            if sighting.offset > before.get(sighting.partition, -1):
                self._stats.counts.setdefault(sighting.group, Counter())[sighting.bin] += 1
                newest = self._guard.get(sighting.partition, -1)
                self._guard[sighting.partition] = max(newest, sighting.offset)
        for group, step in update.steps.items():
            self._stats.steps.setdefault(group, step)
        for key, version in update.references.items():
            self._stats.references.setdefault(key, version)


def _copied(stats: UnitStats) -> UnitStats:
    """A deep copy: a detector changes its view as it counts, the store's must not move."""
    return UnitStats(
        {group: Counter(counts) for group, counts in stats.counts.items()},
        dict(stats.steps),
        dict(stats.references),
    )


class InMemoryServedLog:
    """A served-x log in memory, encoded as Redis keeps it, indexed by entity: for files,
    benchmarks and tests."""

    def __init__(self) -> None:
        self.x: dict[str, bytes] = {}
        self.newest_ms: dict[int, int] = {}
        self.index: dict[str, set[str]] = {}

    async def log(
        self,
        served: Sequence[tuple[str, ServedX]],
        ttl_ms: int,
        newest_ms: Mapping[int, int],
        wall_ms: int,
        entities: Mapping[str, Sequence[str]],
    ) -> None:
        for event_id, x in served:
            self.x.setdefault(event_id, x.dump())  # the first x stays, as in Redis
        for partition, at_ms in newest_ms.items():
            self.newest_ms[partition] = max(self.newest_ms.get(partition, at_ms), at_ms)
        for entity, event_ids in entities.items():
            self.index.setdefault(entity, set()).update(event_ids)

    async def erase(self, entity: str) -> int:
        """The entity's x, and its index entry."""
        event_ids = self.index.pop(entity, set())
        return sum(self.x.pop(event_id, None) is not None for event_id in event_ids)
