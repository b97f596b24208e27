"""Core: all views of a pipeline over one batch of events, in input order: one load, one
guarded save; each event is served the features as they were just before it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from streamproc.config.pipeline import Features
from streamproc.core.features.state import (
    EntityState,
    EntityWrite,
    FeatureEvent,
    FeatureStore,
    FeatureValue,
    OffsetConflict,
    Served,
)
from streamproc.core.features.view import ViewComputer


@dataclass(slots=True)
class FeatureOutcome:
    """A batch's vectors, served in input order, and what the metrics count of it."""

    served: list[Served] = field(default_factory=list)
    late: int = 0
    replayed: int = 0
    writes: int = 0


class FeatureStage:
    """All views of a pipeline over one batch: one load, one guarded save.

    Parsed states stay cached between batches (this worker is the entities' one writer), so
    a batch loads only the entities it has not seen lately. The save's guard catches a stale
    cache (another writer, or an expired key): the batch is then recomputed from Redis once.
    """

    def __init__(
        self,
        features: Features,
        store: FeatureStore,
        cache_size: int = 20_000,
        serve: Collection[str] | None = None,
    ) -> None:
        """`serve`: the features the step's consumers read (None: every declared one)."""
        self._views = [ViewComputer(view, features, serve) for view in features.views]
        self._store = store
        self._cache: OrderedDict[str, EntityState] = OrderedDict()
        self._cache_size = cache_size

    @property
    def views(self) -> list[ViewComputer]:
        return self._views

    async def process(self, events: Sequence[FeatureEvent], wall_ms: int) -> FeatureOutcome:
        """Served vectors in input order (one per event and view, views merged)."""
        if not self._views or not events:
            return FeatureOutcome()
        try:
            return await self._process(events, wall_ms, use_cache=True)
        except OffsetConflict:
            self._cache.clear()  # someone else wrote: trust only what Redis says now
            return await self._process(events, wall_ms, use_cache=False)

    async def _process(
        self, events: Sequence[FeatureEvent], wall_ms: int, use_cache: bool
    ) -> FeatureOutcome:
        keys = sorted({view.key(e.entity) for view in self._views for e in events})
        states: dict[str, EntityState] = {}
        if use_cache:
            states = {key: self._cache[key] for key in keys if key in self._cache}
        missing = [key for key in keys if key not in states]
        if missing:
            stored = await self._store.load(missing)
            for key in missing:
                states[key] = EntityState.parse(stored.get(key, {}))
        marks_before = {key: dict(state.marks) for key, state in states.items()}
        try:
            merged, flags = self._apply(events, states)
            writes = [
                write
                for view in self._views
                for key in sorted({view.key(e.entity) for e in events})
                if (write := _write(key, marks_before[key], states[key], view.ttl_ms, wall_ms))
            ]
            await self._store.save(writes, wall_ms)
        except BaseException:
            for key in keys:  # applied in memory, not in Redis: never keep them
                self._cache.pop(key, None)
            raise
        self._remember(states)
        result = FeatureOutcome(writes=len(writes))
        for event, features, (late, replayed) in zip(events, merged, flags, strict=True):
            result.served.append(Served(event, features, late, replayed))
            result.late += late
            result.replayed += replayed
        return result

    def _apply(
        self, events: Sequence[FeatureEvent], states: dict[str, EntityState]
    ) -> tuple[list[dict[str, FeatureValue]], list[tuple[bool, bool]]]:
        merged: list[dict[str, FeatureValue]] = [{} for _ in events]
        flags: list[tuple[bool, bool]] = [(False, False)] * len(events)
        for view in self._views:
            for index, event in enumerate(events):
                served = view.apply(states[view.key(event.entity)], event)
                merged[index].update(served.features)
                flags[index] = (served.late, served.replayed)
        return merged, flags

    def _remember(self, states: dict[str, EntityState]) -> None:
        for key, state in states.items():
            state.changed.clear()
            self._cache[key] = state
            self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _write(
    key: str, marks_before: Mapping[int, int], state: EntityState, ttl_ms: int, wall_ms: int
) -> EntityWrite | None:
    """The fields the batch touched; nothing at all for a replayed batch."""
    if not state.changed:
        return None  # a replayed batch writes nothing: the hash stays byte-identical
    changed: dict[str, str] = {}
    removed: list[str] = []
    for name in sorted(state.changed):
        text = state.text(name)
        if text is None:
            removed.append(name)
        else:
            changed[name] = text
    changed["w"] = str(wall_ms)
    expected: dict[str, str | None] = {}
    for name in state.changed:
        if name.startswith("o|"):
            before = marks_before.get(int(name[2:]))
            expected[name] = None if before is None else str(before)
    return EntityWrite(key, expected, changed, removed, ttl_ms)
