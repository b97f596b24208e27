"""The partitions of a topic handed over in step by log time (a replay's consumer)."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_CREATE_TIME, KafkaError
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.adapters.kafka.alignment import PartitionAligner

TOPIC = "shop.order.v1"


@dataclass(frozen=True)
class FakeMessage:
    """A record, or (code set) an error of the consumer's."""

    partition_: int
    offset_: int = -1
    at_ms: int = 0
    code: int | None = None
    topic_: str = TOPIC

    def error(self) -> KafkaError | None:
        return None if self.code is None else KafkaError(self.code)

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, self.at_ms


def records(partition: int, times: list[int], first_offset: int = 0) -> list[FakeMessage]:
    return [FakeMessage(partition, first_offset + i, at) for i, at in enumerate(times)]


def end(partition: int) -> FakeMessage:
    return FakeMessage(partition, code=KafkaError._PARTITION_EOF)


def seen(released: list[FakeMessage]) -> list[tuple[int, int]]:
    return [(m.partition(), m.offset()) for m in released]


def aligner(partitions: int, slack_ms: int = 0) -> PartitionAligner[FakeMessage]:
    made = PartitionAligner[FakeMessage](slack_ms)
    made.assign([(TOPIC, p) for p in range(partitions)])
    return made


def test_a_partition_ahead_waits_for_the_slowest_and_batches_interleave_by_log_time() -> None:
    step = aligner(2, slack_ms=5)
    assert step.add(records(0, [100, 200, 300, 400]) + records(1, [110])) == []
    assert seen(step.release()) == [(0, 0), (1, 0)]  # up to 110 + 5
    assert step.holding() == {(TOPIC, 0)}  # to pause: nothing more of it is fetched

    step.add(records(1, [250, 310], first_offset=1))
    assert seen(step.release()) == [(0, 1), (1, 1), (0, 2), (1, 2)]  # up to 315
    assert step.holding() == {(TOPIC, 0)}
    step.add([end(1)])  # partition 1 read to its end: it holds nothing back
    assert seen(step.release()) == [(0, 3)]
    assert step.holding() == set()


def test_a_partition_not_heard_of_yet_holds_back_every_other() -> None:
    step = aligner(3)
    step.add(records(0, [10, 20]) + records(1, [15]))
    assert step.release() == []
    assert step.holding() == {(TOPIC, 0), (TOPIC, 1)}
    step.add([end(2)])  # empty
    assert seen(step.release()) == [(0, 0), (1, 0)]


def test_a_partition_that_gets_records_again_after_its_end_holds_back_again() -> None:
    step = aligner(2)
    step.add([*records(0, [10]), end(0), *records(1, [50, 60])])
    assert seen(step.release()) == [(0, 0), (1, 0), (1, 1)]
    step.add(records(0, [70], first_offset=1) + records(1, [80], first_offset=2))
    assert seen(step.release()) == [(0, 1)]
    assert step.holding() == {(TOPIC, 1)}


def test_a_revoke_drops_what_was_held_of_the_partition_and_frees_the_others() -> None:
    step = aligner(2)
    step.add(records(0, [10, 500]) + records(1, [20]))
    assert seen(step.release()) == [(0, 0), (1, 0)]
    step.revoke([(TOPIC, 0)])  # what it held is read again by its next owner
    assert step.holding() == set()
    step.add(records(0, [600], first_offset=2))  # fetched before the revoke: dropped
    assert step.release() == []
    step.add(records(1, [30], first_offset=1))
    assert seen(step.release()) == [(1, 1)]


def test_each_partition_keeps_its_offset_order_when_a_producer_clock_steps_back() -> None:
    step = aligner(2)
    step.add(records(0, [100, 40, 120]) + records(1, [100]))
    assert seen(step.release()) == [(0, 0), (0, 1), (1, 0)]  # 40 goes after 100, not before
    step.add([end(1)])
    assert seen(step.release()) == [(0, 2)]


def test_topics_are_kept_in_step_each_on_its_own() -> None:
    step = aligner(1)
    step.assign([("labels", 0)])
    step.add([*records(0, [1_000]), FakeMessage(0, 0, 5, topic_="labels")])
    assert {m.topic() for m in step.release()} == {TOPIC, "labels"}


def test_errors_but_the_ends_are_returned_to_the_caller() -> None:
    step = aligner(1)
    failure = FakeMessage(0, code=KafkaError._TRANSPORT)
    assert step.add([end(0), failure]) == [failure]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    fetches=st.lists(
        st.tuples(st.integers(0, 2), st.lists(st.integers(0, 1_000), min_size=0, max_size=6)),
        max_size=30,
    ),
    slack_ms=st.integers(0, 200),
)
def test_every_record_goes_once_in_its_partition_order_and_within_the_slack(
    fetches: list[tuple[int, list[int]]], slack_ms: int
) -> None:
    """Whatever the fetches: nothing is handed over twice or lost, each partition's records
    go in offset order, and none goes before the slowest partition being read has come
    within `slack_ms` of it (in log time, each partition's clock taken as its highest)."""
    step = aligner(3, slack_ms)
    next_offset = [0, 0, 0]
    latest: dict[int, int] = {}
    ended: set[int] = set()
    released: list[FakeMessage] = []
    for partition, times in fetches:
        if not times:
            step.add([end(partition)])
            ended.add(partition)
        else:
            step.add(records(partition, times, next_offset[partition]))
            next_offset[partition] += len(times)
            latest[partition] = max(latest.get(partition, 0), *times)
            ended.discard(partition)
        reading = [latest.get(p) for p in range(3) if p not in ended]
        out = step.release()
        if None in reading:
            assert out == []
        elif reading:
            limit = min(t for t in reading if t is not None) + slack_ms
            assert all(m.at_ms <= limit for m in out)
        released += out
    step.add([end(p) for p in range(3)])
    released += step.release()
    for partition in range(3):
        offsets = [m.offset() for m in released if m.partition() == partition]
        assert offsets == list(range(next_offset[partition]))
    assert step.holding() == set()
