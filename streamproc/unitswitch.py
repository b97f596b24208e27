"""Core: finds undeclared unit switches (s sent where ms are declared, min for s, …).

Values are compared in log10 space per (source, field, version) group against a reference
group of the same source and field. A value far outside the reference's spread, and about one
unit step away (the ladder µs, ms, s, min, h seen from the declared unit: ×1000, ×60, …), is a
suspect. While most of its group's values are suspects, each is corrected by the step they
agree on so far; once enough agree, every value of the group is corrected by that step.
Suspects in a group that is mostly healthy are outliers, left alone.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cache

from streamproc.canonical import UNIT_SECONDS

_CONFIRM_AFTER = 10  # suspected values before a whole group is taken as switched
_MIN_SPREADS = 4.0  # how many reference standard deviations a suspect must be away


@dataclass(slots=True)
class _LogStats:
    """Welford's running mean and variance of log10(value)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    @property
    def sd(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


@dataclass(slots=True)
class _Group:
    values: _LogStats
    distances: _LogStats  # of suspected values from the reference
    confirmed: float | None = None  # the correction once the group is known to be switched


@dataclass(frozen=True, slots=True)
class Verdict:
    """`correction` multiplies the value into the declared unit; 1.0 when nothing is wrong."""

    suspected: bool
    correction: float = 1.0


NOTHING_WRONG = Verdict(False)


class UnitSwitchDetector:
    """Stateful, per worker: it learns magnitudes from the stream it sees."""

    def __init__(self, min_reference: int, tolerance_decades: float) -> None:
        self._min_reference = min_reference
        self._tolerance = tolerance_decades
        self._groups: dict[tuple[str, str], dict[Hashable, _Group]] = {}

    def check(
        self, source: str, field: str, version: Hashable, value: float, declared_unit: str
    ) -> Verdict:
        """`value` is already converted from `declared_unit`; is that unit really the one?"""
        if not value > 0:  # zero or negative magnitudes say nothing about a unit
            return NOTHING_WRONG
        groups = self._groups.setdefault((source, field), {})
        group = groups.get(version)
        if group is None:
            group = groups[version] = _Group(_LogStats(), _LogStats())
        x = math.log10(value)
        if group.confirmed is not None:
            return Verdict(True, group.confirmed)
        reference = self._reference(groups, group)
        corrections = _corrections(declared_unit)
        correction = self._suspect(x, reference, corrections) if reference is not None else None
        if correction is None or reference is None:
            group.values.add(x)
            return NOTHING_WRONG
        group.distances.add(x - reference.mean)
        if group.distances.n <= group.values.n:
            # A rare outlier of a healthy group (a two-second session is real, not minutes
            # sent as seconds): only a group whose values are mostly suspects is switched.
            return NOTHING_WRONG
        # The group's consensus step, not this value's own: a short session sent in seconds
        # where ms are declared can sit nearer the minutes step than the seconds one.
        consensus = _closest(group.distances.mean, corrections, self._tolerance_for(reference))
        if group.distances.n >= _CONFIRM_AFTER:
            group.confirmed = consensus
        return Verdict(True, consensus or correction)

    def _reference(self, groups: dict[Hashable, _Group], current: _Group) -> _LogStats | None:
        """The largest group not known to be switched, preferring another version's."""
        candidates = [g for g in groups.values() if g.confirmed is None and g is not current]
        best = max(candidates, key=lambda g: g.values.n, default=current)
        if best.values.n < self._min_reference:
            best = current
        return best.values if best.values.n >= self._min_reference else None

    def _suspect(
        self, x: float, reference: _LogStats, corrections: Sequence[float]
    ) -> float | None:
        """Far outside the reference's spread and about a unit step away: that step."""
        distance = x - reference.mean
        if abs(distance) < _MIN_SPREADS * reference.sd:
            return None
        return _closest(distance, corrections, self._tolerance_for(reference))

    def _tolerance_for(self, reference: _LogStats) -> float:
        """How far from a unit step still counts as that step: wider for a spread reference."""
        return max(self._tolerance, 3 * reference.sd)


@cache
def _corrections(declared_unit: str) -> tuple[float, ...]:
    """Multipliers from the declared unit to each other unit of the ladder."""
    declared = UNIT_SECONDS[declared_unit]
    return tuple(size / declared for unit, size in UNIT_SECONDS.items() if unit != declared_unit)


def _closest(distance: float, corrections: Sequence[float], tolerance: float) -> float | None:
    """The correction c whose log10 cancels `distance` within `tolerance` decades."""
    best = min(corrections, key=lambda c: abs(distance + math.log10(c)))
    return best if abs(distance + math.log10(best)) < tolerance else None
