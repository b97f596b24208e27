"""Positions: which offsets a worker may commit with several batches in flight and partitions
moving in rebalances."""

from __future__ import annotations

import threading
import time

from streamproc.adapters.kafka.positions import FetchedBatch, Positions
from streamproc.records import Envelope

TOPIC = "t"


def _fetched(positions: Positions, partition: int, offsets: range) -> FetchedBatch:
    records = [Envelope(TOPIC, partition, offset, None, b"") for offset in offsets]
    epochs = {partition: positions.epoch((TOPIC, partition))}
    return positions.hand_over(FetchedBatch(TOPIC, records, epochs))


def test_only_finished_batches_become_committable_at_their_next_offset() -> None:
    positions = Positions()
    positions.assign([(TOPIC, 0), (TOPIC, 1)])
    first, second = _fetched(positions, 0, range(0, 5)), _fetched(positions, 0, range(5, 9))
    other = _fetched(positions, 1, range(100, 103))
    for batch in (first, second, other):
        positions.begin(batch)
    assert positions.take_committable() == {}
    positions.finish(first)
    assert positions.take_committable() == {(TOPIC, 0): 5}
    positions.finish(second)
    positions.finish(other)
    assert positions.take_committable() == {(TOPIC, 0): 9, (TOPIC, 1): 103}
    assert positions.take_committable() == {}  # taken once


def test_records_fetched_under_an_earlier_assignment_are_dropped() -> None:
    positions = Positions()
    positions.assign([(TOPIC, 0)])
    stale = _fetched(positions, 0, range(0, 3))
    assert positions.revoke([(TOPIC, 0)], timeout_s=1) == {}
    positions.assign([(TOPIC, 0)])  # back again, under a new epoch
    fresh = _fetched(positions, 0, range(0, 3))
    assert positions.begin(stale) == []
    assert [r.offset for r in positions.begin(fresh)] == [0, 1, 2]
    positions.finish(stale)
    positions.finish(fresh)
    assert positions.take_committable() == {(TOPIC, 0): 3}


def test_a_revoke_waits_for_the_begun_batch_and_returns_its_offsets() -> None:
    positions = Positions()
    positions.assign([(TOPIC, 0), (TOPIC, 1)])
    begun = _fetched(positions, 0, range(10, 20))
    queued = _fetched(positions, 0, range(20, 30))
    kept = _fetched(positions, 1, range(0, 4))
    positions.begin(begun)
    positions.begin(kept)
    finishing = threading.Timer(0.2, positions.finish, args=(begun,))
    finishing.start()
    started = time.monotonic()
    assert positions.revoke([(TOPIC, 0)], timeout_s=5) == {(TOPIC, 0): 20}
    assert time.monotonic() - started >= 0.15  # it waited for the batch
    assert positions.begin(queued) == []  # not begun after the revoke: the new owner reads it
    positions.finish(kept)
    assert positions.take_committable() == {(TOPIC, 1): 4}


def test_a_revoke_that_times_out_commits_nothing_of_the_busy_partition() -> None:
    positions = Positions()
    positions.assign([(TOPIC, 0)])
    done, busy = _fetched(positions, 0, range(0, 5)), _fetched(positions, 0, range(5, 9))
    positions.begin(done)
    positions.finish(done)
    positions.begin(busy)
    assert positions.revoke([(TOPIC, 0)], timeout_s=0.05) == {}
    positions.finish(busy)  # late: the partition is gone
    assert positions.take_committable() == {}


def test_a_lost_partition_commits_nothing() -> None:
    positions = Positions()
    positions.assign([(TOPIC, 0)])
    batch = _fetched(positions, 0, range(0, 5))
    positions.begin(batch)
    positions.lose([(TOPIC, 0)])
    positions.finish(batch)
    assert positions.take_committable() == {}


def test_a_drain_waits_for_begun_batches_and_begins_no_more() -> None:
    positions = Positions()
    positions.assign([(TOPIC, 0)])
    begun, queued = _fetched(positions, 0, range(0, 5)), _fetched(positions, 0, range(5, 9))
    positions.begin(begun)
    assert not positions.drain(timeout_s=0.05)
    threading.Timer(0.1, positions.finish, args=(begun,)).start()
    assert positions.drain(timeout_s=5)
    assert positions.begin(queued) == []
    positions.finish(queued)
    assert positions.take_committable() == {(TOPIC, 0): 5}


def test_room_is_counted_from_hand_over_to_begin() -> None:
    positions = Positions()
    positions.assign([(TOPIC, 0)])
    batches = [_fetched(positions, 0, range(i, i + 1)) for i in range(2)]
    assert not positions.wait_for_room(2, timeout_s=0.01)
    positions.begin(batches[0])  # begun: the consumer may cut the next batch
    assert positions.wait_for_room(2, timeout_s=0.01)
    positions.finish(batches[0])
    assert positions.wait_for_room(2, timeout_s=0.01)
