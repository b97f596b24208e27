"""What the trainer's Kafka adapters raise when no broker answers (a broker restarting): an
Unavailable, which the worker rides through, not an InfraError that stops it (exit 3)."""

from __future__ import annotations

import pytest

from streamproc.adapters.kafka import reader as reader_module
from streamproc.adapters.kafka.reader import PartitionReader
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.config.kafka import KafkaConnection
from streamproc.errors import Unavailable

NOBODY = KafkaConnection("127.0.0.1:1")  # a port nothing listens on


def test_the_label_reader_without_metadata_is_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reader_module, "ASK_TIMEOUT_S", 1.0)
    with pytest.raises(Unavailable, match="labels: no metadata") as raised:
        PartitionReader(NOBODY, "labels", {}, "group")
    assert raised.value.dependency == "kafka"


def test_a_snapshot_not_acked_in_time_is_unavailable() -> None:
    topic = SnapshotTopic(NOBODY, "snapshots", timeout_s=1)
    try:
        with pytest.raises(Unavailable, match="not acked in 1 s") as raised:
            topic.publish("models/app", b"state")
        assert raised.value.dependency == "kafka"
    finally:
        topic.close()
