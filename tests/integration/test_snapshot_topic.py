"""The compacted snapshot topic on the real broker: a follower reads on exactly where its
last read ended, sees only its deployment's records, and reads a backlog of multi-MB
snapshots at the broker's pace (a starting worker reads the whole topic before it serves)."""

from __future__ import annotations

import os
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from tests.integration.conftest import Stack


def _plain_read_s(stack: Stack, end: int) -> float:
    """The baseline: a consumer with librdkafka's defaults reading the topic to `end`."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": f"it-baseline-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.message.max.bytes": 16_777_216,
        }
    )
    consumer.assign([TopicPartition(SNAPSHOTS_TOPIC, 0, OFFSET_BEGINNING)])
    started, position = time.perf_counter(), 0
    try:
        while position < end:
            for message in consumer.consume(500, timeout=0.05):
                offset = message.offset()
                if message.error() is None and offset is not None:
                    position = offset + 1
        return time.perf_counter() - started
    finally:
        consumer.close()


def test_reads_go_on_from_where_they_ended_and_only_for_their_deployment(stack: Stack) -> None:
    ours, theirs = f"it-{uuid.uuid4().hex[:8]}/p", f"it-{uuid.uuid4().hex[:8]}/p"
    publisher = SnapshotTopic(stack.kafka, SNAPSHOTS_TOPIC)
    follower = SnapshotTopic(stack.kafka, SNAPSHOTS_TOPIC)
    try:
        publisher.publish(f"{ours}/models", b"v1")
        publisher.publish(f"{theirs}/models", b"other")
        assert follower.read_new(f"{ours}/") == {f"{ours}/models": b"v1"}
        assert follower.read_new(f"{ours}/") == {}  # nothing new
        # published while the follower is idle (its partitions paused): read on the next call
        publisher.publish(f"{ours}/models", b"v2")
        publisher.publish(f"{ours}/champion", b"tree")
        publisher.publish(f"{ours}/models", b"v3")
        assert follower.read_new(f"{ours}/") == {
            f"{ours}/models": b"v3",
            f"{ours}/champion": b"tree",
        }
        assert follower.read_new(f"{ours}/") == {}
    finally:
        publisher.forget([f"{ours}/models", f"{ours}/champion", f"{theirs}/models"])
        publisher.close()
        follower.close()


def test_a_backlog_of_multi_megabyte_snapshots_is_read_at_the_brokers_pace(stack: Stack) -> None:
    """With a read-ahead below one snapshot, each record waited out a fetch: 51 MB took 13-20 s
    where a plain consumer took 1 s."""
    scope = f"it-{uuid.uuid4().hex[:8]}/p"
    publisher = SnapshotTopic(stack.kafka, SNAPSHOTS_TOPIC)
    probe = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "it-probe"})
    partition = TopicPartition(SNAPSHOTS_TOPIC, 0)
    try:
        snapshot = os.urandom(3 * 2**20)  # a forest's size, incompressible
        for version in range(8):
            publisher.publish(f"{scope}/models", bytes([version]) + snapshot)
        end = probe.get_watermark_offsets(partition, timeout=10)[1]
        baseline_s = _plain_read_s(stack, end)
        follower = SnapshotTopic(stack.kafka, SNAPSHOTS_TOPIC)
        started = time.perf_counter()
        found = follower.read_new(f"{scope}/")  # a starting worker's read: the whole topic
        read_s = time.perf_counter() - started
        follower.close()
        assert found[f"{scope}/models"][0] == 7
        assert read_s < 3 * baseline_s + 1.0, (read_s, baseline_s)
    finally:
        probe.close()
        publisher.forget([f"{scope}/models"])
        publisher.close()
