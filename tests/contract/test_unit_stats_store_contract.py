"""One suite for every UnitStatsStore: in memory (files, tests) and Redis (the worker)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest

from streamproc.adapters.memory import InMemoryUnitStatsStore
from streamproc.adapters.redis.units import RedisUnitStatsStore
from streamproc.core.unitswitch import UnitSighting, UnitStatsStore, UnitStatsUpdate
from tests.contract.conftest import REDIS_KINDS, each_store

V4 = ("app", "session_duration", "4")
V5 = ("app", "session_duration", "5")


@pytest.fixture(params=REDIS_KINDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[UnitStatsStore]:
    # Annotated, or mypy joins the two classes (alike only by the protocol) into object.
    stores: AsyncIterator[UnitStatsStore] = each_store(
        request, InMemoryUnitStatsStore, RedisUnitStatsStore
    )
    async for each in stores:
        yield each


def _seen(
    partition: int, offsets: range, group: tuple[str, str, str], bin_: int
) -> UnitStatsUpdate:
    return UnitStatsUpdate([UnitSighting(partition, o, group, bin_) for o in offsets])


async def test_an_empty_store_says_nothing(store: UnitStatsStore) -> None:
    stats = await store.exchange(UnitStatsUpdate())
    assert (stats.counts, stats.steps, stats.references) == ({}, {}, {})


async def test_counts_add_up_per_group_and_bin(store: UnitStatsStore) -> None:
    await store.exchange(_seen(0, range(0, 3), V4, 45))
    stats = await store.exchange(_seen(1, range(0, 2), V4, -12))
    assert stats.counts == {V4: Counter({45: 3, -12: 2})}


async def test_a_replayed_batch_is_not_counted_again(store: UnitStatsStore) -> None:
    await store.exchange(_seen(0, range(10, 20), V4, 45))
    # a crash before the commit: the batch comes again, overlapping the next one
    stats = await store.exchange(_seen(0, range(15, 25), V4, 45))
    assert stats.counts[V4][45] == 15
    stats = await store.exchange(_seen(3, range(15, 17), V4, 45))  # another partition's
    assert stats.counts[V4][45] == 17


async def test_two_fields_of_one_record_are_both_counted(store: UnitStatsStore) -> None:
    update = UnitStatsUpdate(
        [UnitSighting(0, 5, V4, 1), UnitSighting(0, 5, ("app", "other", "4"), 2)]
    )
    stats = await store.exchange(update)
    assert stats.counts[("app", "other", "4")][2] == 1 and stats.counts[V4][1] == 1


async def test_the_first_step_and_reference_stored_win(store: UnitStatsStore) -> None:
    await store.exchange(UnitStatsUpdate(steps={V5: 1000.0}, references={V4[:2]: "4"}))
    stats = await store.exchange(UnitStatsUpdate(steps={V5: 60.0}, references={V4[:2]: "5"}))
    assert stats.steps == {V5: 1000.0}
    assert stats.references == {("app", "session_duration"): "4"}


async def test_versions_with_any_text_round_trip(store: UnitStatsStore) -> None:
    group = ("app", "session_duration", "5.1|beta:{x}")
    stats = await store.exchange(
        UnitStatsUpdate([UnitSighting(0, 1, group, 3)], steps={group: 0.001})
    )
    assert stats.counts[group][3] == 1 and stats.steps[group] == 0.001


async def test_a_sent_update_is_applied_and_guarded_like_an_exchanged_one(
    store: UnitStatsStore,
) -> None:
    await store.send(_seen(0, range(0, 4), V4, 45))
    await store.send(_seen(0, range(2, 6), V4, 45))  # overlaps: a replayed batch
    await store.send(UnitStatsUpdate(steps={V5: 1000.0}, references={V4[:2]: "4"}))
    stats = await store.exchange(UnitStatsUpdate())
    assert stats.counts == {V4: Counter({45: 6})}
    assert (stats.steps, stats.references) == ({V5: 1000.0}, {V4[:2]: "4"})
