"""Core: one feature view's arithmetic: apply events to its state, serve a vector; pure."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from streamproc.config.base import duration_ms
from streamproc.config.pipeline import Features, FeatureView
from streamproc.core.features.state import (
    EntityState,
    FeatureEvent,
    FeatureValue,
    Served,
    Status,
    as_stored,
)

_T = TypeVar("_T")


def entity_keys(features: Features, entity: str) -> list[str]:
    """Every declared view's hash key of `entity`, in each feature version up to the declared
    one: an erasure deletes them all (a version built before keeps its hashes until their TTL)."""
    return [
        ViewComputer(view, features.model_copy(update={"version": version})).key(entity)
        for version in range(1, features.version + 1)
        for view in features.views
    ]


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

    def apply(self, state: EntityState, event: FeatureEvent) -> Served:
        mark = state.marks.get(event.partition)
        if mark is not None and event.offset <= mark:
            features = self.serve(state, event.occurred_at_ms, event.values)
            return Served(event, features, replayed=True)
        features = self.serve(state, event.occurred_at_ms, event.values)
        state.marks[event.partition] = event.offset
        state.changed.add(f"o|{event.partition}")
        late = state.newest is not None and event.occurred_at_ms < state.newest - self._lateness_ms
        if late and self._divert_late:
            return Served(event, features, late=True)
        self._update(state, event)
        return Served(event, features, late=late)

    def _update(self, state: EntityState, event: FeatureEvent) -> None:
        t = event.occurred_at_ms
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
                _add(buckets, t // bucket_ms, x)
                # keep what a window ending at any time not yet too late can still need
                oldest = (state.newest - self._lateness_ms) // bucket_ms - window_ms // bucket_ms
                for bucket in [b for b in buckets if b <= oldest]:
                    del buckets[bucket]
                    changed.add(f"b|{name}|{window}|{bucket}")
        self._count(state, event)

    def _count(self, state: EntityState, event: FeatureEvent) -> None:
        """The event's values into the most-frequent counts and the distinct sets."""
        changed = state.changed
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
        state: EntityState,
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
        known: Status = "stale" if stale else "fresh"
        served = self._served
        return {
            name: FeatureValue(value, "missing" if value is None else known, age)
            for name, value in found.items()
            if served is None or name in served
        }


def _kept(declared: Mapping[str, _T], needed: set[str] | None) -> dict[str, _T]:
    return {k: v for k, v in declared.items() if needed is None or k in needed}


def _add(buckets: dict[int, list[float]], bucket: int, x: float) -> None:
    """`x` into a bucket's count, sum, M2, min and max."""
    stats = buckets.get(bucket)
    if stats is None:
        buckets[bucket] = [1.0, as_stored(x), 0.0, x, x]
        return
    # Welford: the spread stays exact where sums of squares would cancel. The sums go on
    # from what Redis holds (15 digits), never from more: whether a state was cached or read
    # back, a batch cut here or there, the same events give the same bytes.
    mean_before = stats[1] / stats[0]
    stats[0] += 1
    stats[1] = as_stored(stats[1] + x)
    stats[2] = as_stored(stats[2] + (x - mean_before) * (x - stats[1] / stats[0]))
    stats[3] = min(stats[3], x)
    stats[4] = max(stats[4], x)


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


def _op(op: str, stats: list[float] | None) -> float | int | None:  # noqa: PLR0911 - one per op
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
