"""Core: finds undeclared unit switches (s sent where ms are declared, min for s, …).

Values are binned in log10 space per (source, field, version) group. The first group of a
source and field to reach `min_reference` values is its reference. Every other group gets a
step (1: healthy, or a jump along the unit ladder µs, ms, s, min, h) that is a property of the
whole group: the step under which the group's values fit the reference's distribution best,
with a prior that favours no switch, then a neighbouring unit. While the group is young its
best step is an estimate, applied to each value and revised as values come; once it leads the
others by a wide margin it is settled for good. Suspects in a healthy group stay outliers.

The counts are shared by every worker of a deployment through a UnitStatsStore, updated once
per batch and guarded by source offsets, so a replay does not count a value twice and a
worker that takes over a partition judges as its predecessor did. A worker counts its own
values as it goes and takes in the others' at most once a second (UnitStatsRefresh).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from streamproc.core.canonical import UNIT_SECONDS

BIN_DECADES = 0.05  # histogram resolution in log10 space
_SETTLE_AFTER = 10  # values of a group before its step may be settled
_SETTLE_MARGIN = 12.0  # log-likelihood lead (nats) of the best step over the next to settle it
# Log prior of a step: no switch is likeliest; a source that switches nearly always moves to
# the neighbouring unit (ms → s), rarely further: one short session read in the wrong unit
# looks like a typical one two rungs away, and must not be taken for it.
_PRIOR_NEIGHBOUR = -4.0
_PRIOR_PER_FURTHER_RUNG = -12.0
# The reference's density: its smoothed histogram (the shape, hard edges included), mixed with
# Laplace tails so that a value outside the seen range is unlikely, not impossible, and the
# further out the less likely: 3 s read as 3 ms is far less likely than 3 s read as 3,000 s.
_TAIL_WEIGHT = 0.05
_MIN_SCALE = 0.05  # decades: a reference of identical values still has some spread
# Groups kept per source and field: a producer that sends build numbers as versions must not
# grow the shared state (and every batch's reply) without end. Past it, a new version's value
# is judged alone against the reference and not kept.
MAX_GROUPS = 64

GroupKey = tuple[str, str, str]  # (source, field, version as text)


@dataclass(slots=True)
class UnitStats:
    """The shared state: per group its log10 histogram, settled steps, pinned references."""

    counts: dict[GroupKey, Counter[int]] = field(default_factory=dict)
    steps: dict[GroupKey, float] = field(default_factory=dict)
    references: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UnitSighting:
    """One counted value: where it was read (the guard) and its bin."""

    partition: int
    offset: int
    group: GroupKey
    bin: int


@dataclass(slots=True)
class UnitStatsUpdate:
    """What one batch learned. Steps and references are proposals: the first one stored wins."""

    sightings: list[UnitSighting] = field(default_factory=list)
    steps: dict[GroupKey, float] = field(default_factory=dict)
    references: dict[tuple[str, str], str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.sightings or self.steps or self.references)


class UnitStatsStore(Protocol):
    """Applies an update (counts only for sightings past the partition's guard offset);
    `exchange` also returns the whole shared state, in the same round trip."""

    async def send(self, update: UnitStatsUpdate) -> None: ...

    async def exchange(self, update: UnitStatsUpdate) -> UnitStats: ...


class UnitStatsRefresh:
    """When a worker reads the shared state back: at most every `every_s`, and at once when
    it proposes a step or a reference (the first stored wins: it adopts the winner soon).
    In between it judges by the last state read plus its own counts."""

    def __init__(self, every_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every_s = every_s
        self._clock = clock
        self._next = -math.inf

    def due(self, update: UnitStatsUpdate) -> bool:
        now = self._clock()
        if now < self._next and not (update.steps or update.references):
            return False
        self._next = now + self._every_s
        return True


@dataclass(frozen=True, slots=True)
class UnitVerdict:
    """`correction` multiplies the value into the declared unit; 1.0 when nothing is wrong.
    `unchecked`: no reference exists yet to judge the value against."""

    suspected: bool
    correction: float = 1.0
    unchecked: bool = False


NOTHING_WRONG = UnitVerdict(False)
UNCHECKED = UnitVerdict(False, unchecked=True)


@dataclass(slots=True)
class _Reference:
    """A reference group's log10 density: its smoothed histogram by bin, and Laplace tails."""

    n: int
    median: float
    scale: float
    smoothed: dict[int, float]  # bin → kernel density estimate per decade

    def log_density(self, x: float) -> float:
        tail = math.exp(-abs(x - self.median) / self.scale) / (2 * self.scale)
        shape = self.smoothed.get(math.floor(x / BIN_DECADES), 0.0)
        return math.log((1 - _TAIL_WEIGHT) * shape + _TAIL_WEIGHT * tail)


class UnitSwitchDetector:
    """Judges values against the shared UnitStats; collects what to write back per batch."""

    def __init__(self, min_reference: int) -> None:
        self._min_reference = min_reference
        self._stats = UnitStats()
        self._pending = UnitStatsUpdate()
        self._references: dict[tuple[str, str], _Reference] = {}

    @property
    def stats(self) -> UnitStats:
        return self._stats

    def adopt(self, stats: UnitStats) -> None:
        """Take the shared state as it is now (after an exchange)."""
        self._stats = stats

    def take_update(self) -> UnitStatsUpdate:
        """What was learned since the last call, to send to the store."""
        update, self._pending = self._pending, UnitStatsUpdate()
        return update

    def check(  # noqa: PLR0913, PLR0917 - per value, hot path: no object to build
        self,
        source: str,
        field_name: str,
        version: object,
        value: float,
        declared_unit: str,
        position: tuple[int, int],
    ) -> UnitVerdict:
        """`value` is already converted from `declared_unit`; is that unit really the one?"""
        group: GroupKey = (source, field_name, "" if version is None else str(version))
        settled = self._stats.steps.get(group)
        if not (value > 0 and math.isfinite(value)):  # says nothing about a unit
            return _verdict(settled) if settled is not None else NOTHING_WRONG
        bin_ = math.floor(math.log10(value) / BIN_DECADES)
        kept = group in self._stats.counts or self._groups_of(group) < MAX_GROUPS
        if kept:
            self._count(group, bin_, position)
            if settled is not None:
                return _verdict(settled)
        return self._judge(group, bin_, kept, declared_unit)

    def _judge(self, group: GroupKey, bin_: int, kept: bool, declared_unit: str) -> UnitVerdict:
        """A group not settled yet, against its field's reference version (a group past the
        cap, by this one value)."""
        key = (group[0], group[1])
        pinned = self._pinned(key)
        if pinned is None:
            return UNCHECKED
        if pinned == group[2]:
            return NOTHING_WRONG  # the reference itself: most values, so before any summary
        reference = self._summary(key, pinned)
        if reference is None:
            return UNCHECKED
        if not kept:  # past the cap: judged alone
            return _verdict(self._best_step(Counter({bin_: 1}), reference, declared_unit)[0])
        step, settled_now = self._best_step(self._stats.counts[group], reference, declared_unit)
        if settled_now:
            self._stats.steps[group] = self._pending.steps[group] = step
        return _verdict(step)

    def _groups_of(self, group: GroupKey) -> int:
        """How many groups of the same source and field are kept."""
        return sum(1 for kept in self._stats.counts if kept[:2] == group[:2])

    def _count(self, group: GroupKey, bin_: int, position: tuple[int, int]) -> None:
        counts = self._stats.counts.get(group)
        if counts is None:
            counts = self._stats.counts[group] = Counter()
        counts[bin_] += 1
        self._pending.sightings.append(UnitSighting(position[0], position[1], group, bin_))

    def _pinned(self, key: tuple[str, str]) -> str | None:
        """The reference version of (source, field), pinning the first group big enough."""
        version = self._stats.references.get(key)
        if version is None:
            sizes = {
                group[2]: sum(counts.values())
                for group, counts in self._stats.counts.items()
                if group[:2] == key and group not in self._stats.steps
            }
            version = max(sizes, key=lambda v: sizes[v], default=None)
            if version is None or sizes[version] < self._min_reference:
                return None
            self._stats.references[key] = self._pending.references[key] = version
        return version

    def _summary(self, key: tuple[str, str], version: str) -> _Reference | None:
        """The reference's density, recomputed as the reference grows by a tenth."""
        counts = self._stats.counts.get((*key, version))
        if not counts:  # pinned, but no values shared yet
            return None
        cached = self._references.get(key)
        n = sum(counts.values())
        if cached is None or n > cached.n * 1.1:
            cached = self._references[key] = _summary(counts, n)
        return cached

    def _best_step(
        self, counts: Counter[int], reference: _Reference, declared_unit: str
    ) -> tuple[float, bool]:
        """The step under which the group fits the reference best, and whether it leads the
        next best by enough (with enough values) to be settled."""
        scores = []
        for step, prior in _steps(declared_unit):
            shift = math.log10(step)
            fit = sum(
                n * reference.log_density((b + 0.5) * BIN_DECADES + shift)
                for b, n in counts.items()
            )
            scores.append((fit + prior, step))
        scores.sort(reverse=True)
        (best, step), (second, _) = scores[0], scores[1]
        settled = sum(counts.values()) >= _SETTLE_AFTER and best - second >= _SETTLE_MARGIN
        return step, settled


def _verdict(step: float) -> UnitVerdict:
    return NOTHING_WRONG if step == 1.0 else UnitVerdict(True, step)


def _summary(counts: Counter[int], n: int) -> _Reference:
    """Median, a robust scale (interquartile range / 1.349) and a kernel density estimate
    (Silverman's bandwidth) of a histogram."""
    ordered = sorted(counts.items())

    def quantile(q: float) -> float:
        target, seen = q * n, 0
        for b, count in ordered:
            seen += count
            if seen >= target:
                return (b + 0.5) * BIN_DECADES
        return (ordered[-1][0] + 0.5) * BIN_DECADES

    scale = max((quantile(0.75) - quantile(0.25)) / 1.349, _MIN_SCALE)
    width = max(0.5 * scale * n ** (-0.2), 2 * BIN_DECADES)
    reach = math.ceil(4 * width / BIN_DECADES)
    smoothed: dict[int, float] = {}
    for target in range(ordered[0][0] - reach, ordered[-1][0] + reach + 1):
        density = sum(
            count * math.exp(-0.5 * ((target - b) * BIN_DECADES / width) ** 2)
            for b, count in ordered
            if abs(target - b) <= reach
        )
        if density > 0:
            smoothed[target] = density / (n * width * math.sqrt(2 * math.pi))
    return _Reference(n, quantile(0.5), scale, smoothed)


@cache
def _steps(declared_unit: str) -> Sequence[tuple[float, float]]:
    """(multiplier into the declared unit, log prior) for no switch and each other unit."""
    units = list(UNIT_SECONDS)
    declared = units.index(declared_unit)
    steps = [(1.0, 0.0)]
    for rung, unit in enumerate(units):
        if rung != declared:
            further = abs(rung - declared) - 1
            prior = _PRIOR_NEIGHBOUR + _PRIOR_PER_FURTHER_RUNG * further
            steps.append((UNIT_SECONDS[unit] / UNIT_SECONDS[declared_unit], prior))
    return tuple(steps)
