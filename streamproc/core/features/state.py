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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from streamproc.avro_records import FeatureStatus

Status = FeatureStatus  # a served feature's status: the words of the prediction's feature_status


@dataclass(frozen=True, slots=True)
class FeatureEvent:
    """A clean event as the feature stage sees it, with its position in the source topic
    (per entity, positions only grow: a source partition is read and cleaned in order)."""

    entity: str
    partition: int
    offset: int
    occurred_at_ms: int
    values: Mapping[str, Any]
    event_id: str = ""


class FeatureValue(NamedTuple):  # a tuple: ~30 of them per event, cheap to make
    """One served feature and whether it could be trusted: fresh, stale or missing."""

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
class EntityState:
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
    def parse(cls, fields: Mapping[str, str]) -> EntityState:
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
            return None if stats is None else pack_stats(stats)
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


def as_stored(value: float) -> float:
    """`value` as a bucket's sums are stored (15 significant digits) and read back."""
    return float(f"{value:.15g}")


def pack_stats(stats: list[float]) -> str:
    """count|sum|squared deviations|min|max, short enough (≤ 64 bytes) for Redis to keep the hash
    in its compact listpack encoding; sums keep 15 significant digits."""
    count, total, squares, low, high = stats
    return f"{count:.0f}|{total:.15g}|{squares:.15g}|{low!r}|{high!r}"
