"""Undeclared unit switches are found per (source, field, version) group, against the first
group to reach the reference size, from the group's whole distribution."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from streamproc.adapters.memory import InMemoryUnitStatsStore
from streamproc.core.unitswitch import (
    MAX_GROUPS,
    UnitStatsRefresh,
    UnitStatsUpdate,
    UnitSwitchDetector,
    UnitVerdict,
)

Sessions = Callable[[random.Random, int], list[float]]


class _Feed:
    """A detector fed one value at a time, at increasing offsets of one partition."""

    def __init__(self, detector: UnitSwitchDetector | None = None) -> None:
        self.detector = detector or UnitSwitchDetector(min_reference=30)
        self.offset = 0

    def check(
        self, version: object, value: float, unit: str = "ms", source: str = "app"
    ) -> UnitVerdict:
        self.offset += 1
        return self.detector.check(
            source, "session_duration", version, value, unit, (0, self.offset)
        )


def _narrow(rng: random.Random, count: int) -> list[float]:
    """Seconds: log-normal around 3 minutes, like the scenario's generator."""
    return [rng.lognormvariate(math.log(180), 0.6) for _ in range(count)]


def _wide(rng: random.Random, count: int) -> list[float]:
    """Seconds: anything from 2 s to 10 minutes, log-uniform, like a real shop's app."""
    return [10 ** rng.uniform(math.log10(2), math.log10(600)) for _ in range(count)]


def test_a_short_session_after_forty_orders_is_read_as_seconds_not_minutes() -> None:
    """The issue's reproduction: 24.3 (s, where ms are declared) became 1,458 s."""
    rng = random.Random(1)
    feed = _Feed()
    for seconds in _narrow(rng, 40):  # app v4: ms declared and sent, converted to s
        feed.check(4, seconds)
    verdict = feed.check(5, 24.3 / 1000)  # v5 sends 24.3 s, read as 0.0243 s
    assert verdict.suspected
    assert 24.3 / 1000 * verdict.correction == pytest.approx(24.3)


@pytest.mark.parametrize("spread", [_narrow, _wide], ids=["narrow", "wide"])
@pytest.mark.parametrize("first", ["short", "long", "typical"])
@pytest.mark.parametrize("seed", range(20))
def test_every_switched_value_is_flagged_and_converted_by_the_groups_step(
    spread: Sessions, first: str, seed: int
) -> None:
    rng = random.Random(seed)
    feed = _Feed()
    for seconds in spread(rng, 200):
        assert not feed.check(4, seconds).suspected
    openers = {"short": [rng.uniform(2, 9)], "long": [rng.uniform(400, 600)], "typical": []}
    v5 = openers[first] + spread(rng, 30)
    verdicts = [feed.check(5, seconds / 1000) for seconds in v5]  # seconds sent, read as ms
    assert [v.correction for v in verdicts[1:]] == [1000.0] * (len(v5) - 1)
    assert all(v.suspected for v in verdicts[1:])
    # The first value alone: a short one must not be read as minutes; a long one (600 s read
    # as 0.6 s) may still pass for a fast session, but is then not converted by a wrong step.
    assert verdicts[0].correction in ((1000.0,) if first == "short" else (1.0, 1000.0))


def test_the_groups_step_is_settled_and_holds() -> None:
    rng = random.Random(7)
    feed = _Feed()
    for seconds in _wide(rng, 200):
        feed.check(4, seconds)
    for seconds in _wide(rng, 40):
        feed.check(5, seconds / 1000)
    assert feed.detector.stats.steps == {("app", "session_duration", "5"): 1000.0}
    # Settled: even a value that alone would look like a healthy ms value is converted.
    assert feed.check(5, 30.0).correction == 1000.0


def test_a_factor_of_sixty_is_found_once_the_group_agrees() -> None:
    rng = random.Random(2)
    feed = _Feed()
    for seconds in _narrow(rng, 300):
        feed.check(None, seconds, "s", source="web")
    verdicts = [feed.check("v2", s / 60, "s", source="web") for s in _narrow(rng, 100)]
    assert all(v.suspected for v in verdicts)
    assert all(v.correction == 60.0 for v in verdicts[-90:])


@pytest.mark.parametrize("spread", [_narrow, _wide], ids=["narrow", "wide"])
@pytest.mark.parametrize("seed", range(10))
def test_a_healthy_new_version_raises_no_alarm(spread: Sessions, seed: int) -> None:
    rng = random.Random(seed)
    feed = _Feed()
    for seconds in spread(rng, 300):
        feed.check(4, seconds)
    # Its first value is a click-through of a few seconds: alone, as unlike the reference as
    # 2,000 s read in the wrong unit, so it may be flagged; the group's next values decide.
    values = [rng.uniform(2, 4), *spread(rng, 2_000)]
    verdicts = [feed.check(6, seconds) for seconds in values]
    assert not any(v.suspected for v in verdicts[1:])
    assert feed.detector.stats.steps[("app", "session_duration", "6")] == 1.0


def test_versions_are_compared_per_source_and_field() -> None:
    rng = random.Random(4)
    feed = _Feed()
    for seconds in _narrow(rng, 100):
        feed.check(4, seconds)
    # web has no reference of its own yet: app's is not used for it
    assert feed.check(None, 0.05, "s", source="web") == UnitVerdict(False, unchecked=True)


@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan])
def test_values_that_say_nothing_about_a_unit_are_not_counted(value: float) -> None:
    feed = _Feed()
    for _ in range(50):
        feed.check(4, 100.0)
    assert not feed.check(5, value).suspected
    assert ("app", "session_duration", "5") not in feed.detector.stats.counts


def test_values_before_a_reference_exists_are_unchecked_not_passed_silently() -> None:
    feed = _Feed()
    verdicts = [feed.check(5, 0.09) for _ in range(29)]
    assert all(v == UnitVerdict(False, unchecked=True) for v in verdicts)


async def test_a_worker_taking_over_judges_as_its_predecessor_did() -> None:
    """The detector's state lives in the store: a fresh detector that adopts it knows the
    reference and the settled step (a rebalance, a restart)."""
    rng = random.Random(8)
    store = InMemoryUnitStatsStore()
    first = _Feed()
    for seconds in _narrow(rng, 100):
        first.check(4, seconds)
    for seconds in _narrow(rng, 20):
        first.check(5, seconds / 1000)
    await store.exchange(first.detector.take_update())
    successor = _Feed(UnitSwitchDetector(min_reference=30))
    successor.offset = first.offset
    successor.detector.adopt(await store.exchange(successor.detector.take_update()))
    verdict = successor.check(5, 0.061)  # "61" seconds, read as ms
    assert verdict == UnitVerdict(True, 1000.0)


async def test_a_replayed_batch_counts_nothing_twice() -> None:
    store = InMemoryUnitStatsStore()
    feed = _Feed()
    for _ in range(10):
        feed.check(4, 100.0)
    update = feed.detector.take_update()
    await store.exchange(update)
    again = await store.exchange(update)  # the same offsets after a crash
    assert sum(again.counts[("app", "session_duration", "4")].values()) == 10


def test_the_shared_state_is_read_back_once_a_second_or_at_once_after_a_proposal() -> None:
    now = [100.0]
    refresh = UnitStatsRefresh(every_s=1.0, clock=lambda: now[0])
    counts_only = UnitStatsUpdate()
    assert refresh.due(counts_only)  # the first batch reads it
    now[0] += 0.5
    assert not refresh.due(counts_only)
    assert refresh.due(UnitStatsUpdate(steps={("app", "session_duration", "5"): 1000.0}))
    now[0] += 0.9
    assert not refresh.due(counts_only)  # a second after the last read, not the first
    assert refresh.due(UnitStatsUpdate(references={("app", "session_duration"): "4"}))
    now[0] += 1.0
    assert refresh.due(counts_only)


async def test_a_worker_judges_by_its_own_counts_between_reads() -> None:
    """Between reads of the shared state a detector counts its own values, so its reference
    is pinned by its own traffic as soon as it is big enough."""
    store = InMemoryUnitStatsStore()
    feed = _Feed()
    feed.detector.adopt(await store.exchange(feed.detector.take_update()))
    rng = random.Random(3)
    for seconds in _narrow(rng, 40):
        feed.check(4, seconds)
    await store.send(feed.detector.take_update())  # no read back
    assert feed.check(5, 0.2) == UnitVerdict(True, 1000.0)  # "200" seconds, read as ms
    shared = await store.exchange(feed.detector.take_update())
    assert sum(shared.counts[("app", "session_duration", "4")].values()) == 40


def test_versions_past_the_cap_are_judged_alone_and_not_kept() -> None:
    """A producer sending build numbers as versions: the state stays bounded, and a switched
    value of a version past the cap is still flagged and converted."""
    rng = random.Random(9)
    feed = _Feed()
    for seconds in _narrow(rng, 200):
        feed.check(4, seconds)
    for build in range(500):
        feed.check(f"4.0.{build}", _narrow(rng, 1)[0])
    kept = [
        group for group in feed.detector.stats.counts if group[:2] == ("app", "session_duration")
    ]
    assert len(kept) == MAX_GROUPS
    assert feed.check("5.0.1", 61 / 1000) == UnitVerdict(True, 1000.0)  # 61 s, read as ms
    assert not feed.check("4.0.999", 120.0).suspected
