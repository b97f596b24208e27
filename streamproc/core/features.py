"""Core: online features per entity: windowed aggregates over event-time buckets, the usual
(most frequent) value, exact distinct counts, time since the newest event, and ratios.

State lives in one flat hash per (entity, view), field → text, so Redis and the in-memory
store hold exactly the same bytes:

    b|<aggregate>|<window>|<bucket>  "count|sum|M2|min|max" of the bucket's values (M2: the
                                     sum of squared deviations from their mean, Welford)
    l|<feature>                      the value at the newest event (JSON)
    m|<feature>|<value>              how often the entity had this value (most frequent)
    d|<feature>|<value>              "1": the value was seen (distinct), at most max_distinct
    o|<partition>                    the last source offset applied from that partition
    t                                the newest event time applied (ms), the view's timestamp
    w                                wall-clock ms of the last write (for the TTL at read time)

A batch is applied in input order; each event is served the features as they were just before
it. Offsets are the event's position in the source topic (the raw order the clean stage read,
carried in a header), so an event at or below its partition's mark was applied already: a
feature batch replayed after a crash, or an order the clean stage re-sent after its own crash
(at a new clean offset: Kafka output without transactions is at-least-once), changes nothing,
and applying a batch twice leaves the state byte-identical.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from streamproc.spec.base import duration_ms
from streamproc.spec.pipeline import Features, FeatureView

_T = TypeVar("_T")

Status = Literal["present", "missing", "stale"]


@dataclass(frozen=True, slots=True)
class FeatureEvent:
    """A clean event as the feature stage sees it, with its position in the source topic
    (per entity, positions only grow: a source partition is read and cleaned in order)."""

    entity: str
    partition: int
    offset: int
    occurred_at: int
    values: Mapping[str, Any]
    event_id: str = ""


class FeatureValue(NamedTuple):  # a tuple: ~30 of them per event, cheap to make
    value: Any
    status: Status
    age_ms: int | None  # since the view's newest event (event time), None when never updated


@dataclass(frozen=True, slots=True)
class Served:
    """The vector an event was served: the state just before it."""

    event: FeatureEvent
    features: dict[str, FeatureValue]
    late: bool = False
    replayed: bool = False  # applied before (a replay): served from the state after it


@dataclass(frozen=True, slots=True)
class EntityWrite:
    """Changes to one hash, applied only if its offset marks still read `expected`."""

    key: str
    expected: dict[str, str | None]
    set: dict[str, str]
    delete: list[str]
    ttl_ms: int


class FeatureStore(Protocol):
    """Reads hashes in one round trip; writes a batch's changes in one guarded call."""

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, str]]: ...

    async def save(self, writes: Sequence[EntityWrite], wall_ms: int) -> None: ...


class OffsetConflict(Exception):
    """Another writer moved an entity's offset mark between our read and our write."""


@dataclass(slots=True)
class _State:
    """One entity's view, parsed."""

    buckets: dict[tuple[str, str], dict[int, list[float]]] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    frequent: dict[str, dict[str, int]] = field(default_factory=dict)
    distinct: dict[str, set[str]] = field(default_factory=dict)
    marks: dict[int, int] = field(default_factory=dict)
    newest: int | None = None
    wall: int | None = None
    changed: set[str] = field(default_factory=set)  # fields to write (or delete if gone)

    @classmethod
    def parse(cls, fields: Mapping[str, str]) -> _State:
        state = cls()
        for name, text in fields.items():
            kind, _, rest = name.partition("|")
            if kind == "b":
                aggregate, window, bucket = rest.split("|")
                stats = [float(part) for part in text.split("|")]
                state.buckets.setdefault((aggregate, window), {})[int(bucket)] = stats
            elif kind == "l":
                state.last[rest] = json.loads(text)
            elif kind == "m":
                feature, _, value = rest.partition("|")
                state.frequent.setdefault(feature, {})[value] = int(text)
            elif kind == "d":
                feature, _, value = rest.partition("|")
                state.distinct.setdefault(feature, set()).add(value)
            elif kind == "o":
                state.marks[int(rest)] = int(text)
            elif kind == "t":
                state.newest = int(text)
            elif kind == "w":
                state.wall = int(text)
        return state

    def text(self, name: str) -> str | None:
        """A field's stored text, None when the state no longer has it."""
        kind, _, rest = name.partition("|")
        if kind == "b":
            aggregate, window, bucket = rest.split("|")
            stats = self.buckets.get((aggregate, window), {}).get(int(bucket))
            return None if stats is None else _pack(stats)
        if kind == "l":
            return json.dumps(self.last[rest]) if rest in self.last else None
        if kind == "m":
            feature, _, value = rest.partition("|")
            count = self.frequent.get(feature, {}).get(value)
            return None if count is None else str(count)
        if kind == "d":
            feature, _, value = rest.partition("|")
            return "1" if value in self.distinct.get(feature, ()) else None
        if kind == "o":
            offset = self.marks.get(int(rest))
            return None if offset is None else str(offset)
        if kind == "t":
            return None if self.newest is None else str(self.newest)
        raise ValueError(f"unknown feature field {name!r}")


def _pack(stats: list[float]) -> str:
    """count|sum|squared deviations|min|max, short enough (≤ 64 bytes) for Redis to keep the hash
    in its compact listpack encoding; sums keep 15 significant digits."""
    count, total, squares, low, high = stats
    return f"{count:.0f}|{total:.15g}|{squares:.15g}|{low!r}|{high!r}"


class ViewComputer:
    """Applies events to one view's states and serves vectors; pure, no I/O."""

    def __init__(
        self, view: FeatureView, features: Features, serve: Collection[str] | None = None
    ) -> None:
        """`serve`: the features someone consumes (None: all). The others are kept up to date
        but not computed per event; `since_last` is always served: it carries the age."""
        self.view = view
        wanted = None if serve is None else {*serve, view.since_last}
        self._served = wanted  # None: every feature
        # what the wanted ratios divide by must be computed, served or not
        needed = (
            None
            if wanted is None
            else wanted | {against for name, (_, against) in view.ratios.items() if name in wanted}
        )
        self._lateness_ms = duration_ms(features.lateness)
        self._divert_late = features.late == "divert"
        self._ttl_ms = duration_ms(view.ttl)
        self._windows = {w: (duration_ms(w), duration_ms(b)) for w, b in view.windows.items()}
        # (aggregate, window, buckets per window, bucket ms, [(op, feature name)]), made once
        self._windowed = [
            (
                name,
                window,
                window_ms // bucket_ms,
                bucket_ms,
                ops,
            )
            for name, aggregate in view.aggregates.items()
            for window, (window_ms, bucket_ms) in self._windows.items()
            if (
                ops := [
                    (op, f"{name}_{op}_{window}")
                    for op in aggregate.ops
                    if needed is None or f"{name}_{op}_{window}" in needed
                ]
            )
        ]
        self._last = _kept(view.last, needed)
        self._most_frequent = _kept(view.most_frequent, needed)
        self._distinct = _kept(view.distinct, needed)
        self._ratios = _kept(view.ratios, needed)
        self._prefix = f"v{features.version}:{view.name}"

    def key(self, entity: str) -> str:
        """Braces make a hash tag: every key of an entity shares a Redis Cluster slot."""
        return f"{self._prefix}:{{{entity}}}"

    @property
    def ttl_ms(self) -> int:
        return self._ttl_ms

    def apply(self, state: _State, event: FeatureEvent) -> Served:
        mark = state.marks.get(event.partition)
        if mark is not None and event.offset <= mark:
            features = self.serve(state, event.occurred_at, event.values)
            return Served(event, features, replayed=True)
        features = self.serve(state, event.occurred_at, event.values)
        state.marks[event.partition] = event.offset
        state.changed.add(f"o|{event.partition}")
        late = state.newest is not None and event.occurred_at < state.newest - self._lateness_ms
        if late and self._divert_late:
            return Served(event, features, late=True)
        self._update(state, event)
        return Served(event, features, late=late)

    def _update(self, state: _State, event: FeatureEvent) -> None:
        t = event.occurred_at
        changed = state.changed
        if state.newest is None or t >= state.newest:  # an older event does not change "last"
            for name, source in self.view.last.items():
                state.last[name] = event.values.get(source)
                changed.add(f"l|{name}")
        state.newest = t if state.newest is None else max(state.newest, t)
        changed.add("t")
        for name, aggregate in self.view.aggregates.items():
            value = event.values.get(aggregate.field)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue  # a missing value is not a zero
            x = float(value)
            for window, (window_ms, bucket_ms) in self._windows.items():
                buckets = state.buckets.setdefault((name, window), {})
                changed.add(f"b|{name}|{window}|{t // bucket_ms}")
                stats = buckets.get(t // bucket_ms)
                if stats is None:
                    buckets[t // bucket_ms] = [1.0, x, 0.0, x, x]
                else:  # Welford: the spread stays exact where sums of squares would cancel
                    mean_before = stats[1] / stats[0]
                    stats[0] += 1
                    stats[1] += x
                    stats[2] += (x - mean_before) * (x - stats[1] / stats[0])
                    stats[3] = min(stats[3], x)
                    stats[4] = max(stats[4], x)
                # keep what a window ending at any time not yet too late can still need
                oldest = (state.newest - self._lateness_ms) // bucket_ms - window_ms // bucket_ms
                for bucket in [b for b in buckets if b <= oldest]:
                    del buckets[bucket]
                    changed.add(f"b|{name}|{window}|{bucket}")
        for name, source in self.view.most_frequent.items():
            value = event.values.get(source)
            if value is not None:
                counts = state.frequent.setdefault(name, {})
                counts[str(value)] = counts.get(str(value), 0) + 1
                changed.add(f"m|{name}|{value}")
        for name, source in self.view.distinct.items():
            value = event.values.get(source)
            if value is not None:
                seen = state.distinct.setdefault(name, set())
                if len(seen) < self.view.max_distinct and str(value) not in seen:
                    seen.add(str(value))
                    changed.add(f"d|{name}|{value}")

    def serve(
        self,
        state: _State,
        at_ms: int,
        values: Mapping[str, Any] | None = None,
        stale: bool | None = None,
    ) -> dict[str, FeatureValue]:
        """Features at event time `at_ms` from `state`; `values` (the event's own) feed the
        ratios. Stale: the view's age past its TTL, unless the caller knows better."""
        age = None if state.newest is None else max(0, at_ms - state.newest)
        if stale is None:
            stale = age is not None and age > self._ttl_ms
        found: dict[str, Any] = {}
        for aggregate, window, span, bucket_ms, names in self._windowed:
            stats = _combine(state.buckets.get((aggregate, window), {}), at_ms // bucket_ms, span)
            for op, name in names:
                found[name] = _op(op, stats)
        found[self.view.since_last] = None if age is None else age / 1000
        for name in self._last:
            found[name] = state.last.get(name)
        for name in self._most_frequent:
            counts = state.frequent.get(name)
            found[name] = min(counts, key=lambda v: (-counts[v], v)) if counts else None
        for name in self._distinct:
            found[name] = len(state.distinct.get(name, ()))
        for name, (source, against) in self._ratios.items():
            numerator = (values or {}).get(source)
            denominator = found[against]
            ok = isinstance(numerator, int | float) and denominator
            found[name] = float(numerator) / denominator if ok else None  # type: ignore[arg-type]
        known: Status = "stale" if stale else "present"
        served = self._served
        return {
            name: FeatureValue(value, "missing" if value is None else known, age)
            for name, value in found.items()
            if served is None or name in served
        }


def _kept(declared: Mapping[str, _T], needed: set[str] | None) -> dict[str, _T]:
    return {k: v for k, v in declared.items() if needed is None or k in needed}


def _combine(buckets: Mapping[int, list[float]], last: int, span: int) -> list[float] | None:
    """count, sum, M2, min, max over buckets (last - span, last]."""
    total: list[float] | None = None
    for bucket, stats in buckets.items():  # few: only buckets that had events are stored
        if not last - span < bucket <= last:
            continue
        if total is None:
            total = list(stats)
        else:  # Chan et al.: two groups' squared deviations, combined
            merged = total[0] + stats[0]
            delta = stats[1] / stats[0] - total[1] / total[0]
            total[2] += stats[2] + delta * delta * total[0] * stats[0] / merged
            total[0] = merged
            total[1] += stats[1]
            total[3] = min(total[3], stats[3])
            total[4] = max(total[4], stats[4])
    return total


def _op(op: str, stats: list[float] | None) -> float | int | None:
    if stats is None:
        return 0 if op == "count" else (0.0 if op == "sum" else None)
    count, total, squares, low, high = stats  # squares: squared deviations from the mean
    if op == "count":
        return int(count)
    if op == "sum":
        return total
    mean = total / count
    if op == "mean":
        return mean
    if op == "min":
        return low
    if op == "max":
        return high
    return math.sqrt(max(0.0, squares / count))  # population stddev


@dataclass(slots=True)
class FeatureBatch:
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
        self._cache: OrderedDict[str, _State] = OrderedDict()
        self._cache_size = cache_size

    @property
    def views(self) -> list[ViewComputer]:
        return self._views

    async def process(self, events: Sequence[FeatureEvent], wall_ms: int) -> FeatureBatch:
        """Served vectors in input order (one per event and view, views merged)."""
        if not self._views or not events:
            return FeatureBatch()
        try:
            return await self._process(events, wall_ms, use_cache=True)
        except OffsetConflict:
            self._cache.clear()  # someone else wrote: trust only what Redis says now
            return await self._process(events, wall_ms, use_cache=False)

    async def _process(
        self, events: Sequence[FeatureEvent], wall_ms: int, use_cache: bool
    ) -> FeatureBatch:
        keys = sorted({view.key(e.entity) for view in self._views for e in events})
        states: dict[str, _State] = {}
        if use_cache:
            states = {key: self._cache[key] for key in keys if key in self._cache}
        missing = [key for key in keys if key not in states]
        if missing:
            stored = await self._store.load(missing)
            for key in missing:
                states[key] = _State.parse(stored.get(key, {}))
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
        result = FeatureBatch(writes=len(writes))
        for event, features, (late, replayed) in zip(events, merged, flags, strict=True):
            result.served.append(Served(event, features, late, replayed))
            result.late += late
            result.replayed += replayed
        return result

    def _apply(
        self, events: Sequence[FeatureEvent], states: dict[str, _State]
    ) -> tuple[list[dict[str, FeatureValue]], list[tuple[bool, bool]]]:
        merged: list[dict[str, FeatureValue]] = [{} for _ in events]
        flags: list[tuple[bool, bool]] = [(False, False)] * len(events)
        for view in self._views:
            for index, event in enumerate(events):
                served = view.apply(states[view.key(event.entity)], event)
                merged[index].update(served.features)
                flags[index] = (served.late, served.replayed)
        return merged, flags

    def _remember(self, states: dict[str, _State]) -> None:
        for key, state in states.items():
            state.changed.clear()
            self._cache[key] = state
            self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _write(
    key: str, marks_before: Mapping[int, int], state: _State, ttl_ms: int, wall_ms: int
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


class FeatureClient:
    """The read path: an entity's current features, many entities in one round trip.

    Windows are evaluated at `at_ms` (event time; default: each entity's newest event). The
    TTL is enforced here, by the wall clock of the last write, not left to Redis' lazy expiry:
    a view not written for longer than its TTL reads as stale.
    """

    def __init__(self, features: Features, store: FeatureStore) -> None:
        self._views = [ViewComputer(view, features) for view in features.views]
        self._store = store

    async def get(
        self, entity: str, wall_ms: int, at_ms: int | None = None
    ) -> dict[str, FeatureValue]:
        return (await self.get_many([entity], wall_ms, at_ms))[entity]

    async def get_many(
        self, entities: Sequence[str], wall_ms: int, at_ms: int | None = None
    ) -> dict[str, dict[str, FeatureValue]]:
        keys = sorted({view.key(entity) for view in self._views for entity in entities})
        stored = await self._store.load(keys)
        out: dict[str, dict[str, FeatureValue]] = {entity: {} for entity in entities}
        for view in self._views:
            for entity in entities:
                state = _State.parse(stored.get(view.key(entity), {}))
                at = at_ms if at_ms is not None else (state.newest or wall_ms)
                stale = state.wall is not None and wall_ms - state.wall > view.ttl_ms
                out[entity].update(view.serve(state, at, stale=stale))
        return out
