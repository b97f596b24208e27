"""One suite for every SeenStore: in memory (files, tests) and Redis (the worker)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from streamproc.adapters.memory import InMemorySeenStore
from streamproc.adapters.redis.stores import RedisSeenStore
from streamproc.core.dedupe import Claim, DedupeRules, SeenStore, Sighting
from tests.contract.conftest import REDIS_KINDS, each_store

RULES = DedupeRules(window_ms=600_000, id_ttl_ms=3_600_000, content_ttl_ms=3_600_000)
REDIS_URL = os.environ.get("STREAMPROC_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=REDIS_KINDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SeenStore]:
    # Annotated, or mypy joins the two classes (alike only by the protocol) into object.
    stores: AsyncIterator[SeenStore] = each_store(request, InMemorySeenStore, RedisSeenStore)
    async for each in stores:
        yield each


def claim(  # noqa: PLR0913, PLR0917 - a claim's parts, most defaulted
    event_id: str,
    offset: int,
    at: int,
    content: str | None = "fp1",
    partition: int = 0,
    logged: int | None = None,
) -> Claim:
    """Logged (its Kafka timestamp) at its event time unless told."""
    sighting = Sighting(event_id, partition, offset, at, at if logged is None else logged)
    return Claim(sighting, content, "entity-1")


async def test_first_sightings_are_not_duplicates(store: SeenStore) -> None:
    verdicts = await store.claim([claim("a", 0, 0, "fa"), claim("b", 1, 0, "fb")], RULES)
    assert [v.kind for v in verdicts] == [None, None]


async def test_the_same_id_again_is_a_retry_of_the_first(store: SeenStore) -> None:
    await store.claim([claim("a", 0, 1_000)], RULES)
    [verdict] = await store.claim([claim("a", 7, 2_000, partition=3)], RULES)
    assert verdict.kind == "retry"
    assert verdict.first == Sighting("a", 0, 0, 1_000, 1_000)


async def test_same_content_within_the_window_is_a_resubmission(store: SeenStore) -> None:
    verdicts = await store.claim([claim("a", 0, 0), claim("b", 1, 599_999)], RULES)
    assert [v.kind for v in verdicts] == [None, "resubmission"]
    assert verdicts[1].first == Sighting("a", 0, 0, 0, 0)


async def test_same_content_outside_the_window_is_a_new_order(store: SeenStore) -> None:
    verdicts = await store.claim(
        [claim("a", 0, 0), claim("b", 1, 600_001), claim("c", 2, 1_000_000)], RULES
    )
    assert [v.kind for v in verdicts] == [None, None, "resubmission"]
    assert verdicts[2].first is not None and verdicts[2].first.event_id == "b"


async def test_the_window_looks_both_ways_in_event_time(store: SeenStore) -> None:
    verdicts = await store.claim([claim("late", 0, 500_000), claim("early", 1, 0)], RULES)
    assert [v.kind for v in verdicts] == [None, "resubmission"]


async def test_no_fingerprint_no_content_check(store: SeenStore) -> None:
    verdicts = await store.claim([claim("a", 0, 0, None), claim("b", 1, 0, None)], RULES)
    assert [v.kind for v in verdicts] == [None, None]


async def test_replaying_a_batch_gives_the_same_verdicts(store: SeenStore) -> None:
    batch = [claim("a", 0, 0), claim("b", 1, 10), claim("a", 2, 20), claim("c", 3, 30, "fc")]
    first = await store.claim(batch, RULES)
    again = await store.claim(batch, RULES)  # Kafka redelivers after a crash
    assert [v.kind for v in first] == [None, "resubmission", "retry", None]
    assert again == first


async def test_a_retry_of_a_resubmission_points_at_the_resubmission(store: SeenStore) -> None:
    verdicts = await store.claim([claim("a", 0, 0), claim("b", 1, 5), claim("b", 2, 6)], RULES)
    assert [v.kind for v in verdicts] == [None, "resubmission", "retry"]
    assert verdicts[2].first is not None and verdicts[2].first.event_id == "b"


async def test_an_id_logged_longer_ago_than_its_ttl_is_forgotten(store: SeenStore) -> None:
    """The time to live runs between log times, whenever the records are read: a replay of
    the log judges as the live run did."""
    ttl = RULES.id_ttl_ms
    verdicts = await store.claim(
        [
            claim("a", 0, 0, "fa", logged=0),
            claim("a", 1, 0, "fa", logged=ttl),  # a retry, just in time
            claim("a", 2, 0, "fa", logged=ttl + 1),  # the first is forgotten: new
            claim("a", 3, 0, "fa", logged=ttl + 2),  # a retry of the new first
        ],
        RULES,
    )
    assert [v.kind for v in verdicts] == [None, "retry", None, "retry"]
    assert verdicts[3].first is not None and verdicts[3].first.offset == 2


async def test_a_content_logged_longer_ago_than_its_ttl_is_forgotten(store: SeenStore) -> None:
    ttl = RULES.content_ttl_ms
    verdicts = await store.claim(
        [
            claim("a", 0, 0, logged=0),
            claim("b", 1, 1_000, logged=ttl + 1),  # in the window, but logged too late
            claim("c", 2, 2_000, logged=ttl + 2),  # a resubmission of b
        ],
        RULES,
    )
    assert [v.kind for v in verdicts] == [None, None, "resubmission"]
    assert verdicts[2].first is not None and verdicts[2].first.event_id == "b"


async def test_sightings_remembered_without_a_log_time_still_count(store: SeenStore) -> None:
    """Remembered before log times were (an upgrade within the time to live)."""
    old = Claim(Sighting("a", 0, 0, 0), "fp1", "entity-1")
    await store.claim([old], RULES)
    [verdict] = await store.claim([claim("a", 5, 0, logged=10 * RULES.id_ttl_ms)], RULES)
    assert verdict.kind == "retry"
    assert verdict.first == Sighting("a", 0, 0, 0)
