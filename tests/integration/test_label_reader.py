"""The trainer's label reader on the real broker: it tells which partitions it has read to
their end, past the markers a transactional producer leaves after its records, so that an
idle label partition holds no other back."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from streamproc.adapters.kafka.reader import PartitionReader
from streamproc.records import Envelope
from tests.integration.conftest import Stack, own_topic


def _read_until_all_at_end(reader: PartitionReader, timeout_s: float = 30) -> list[Envelope]:
    read: list[Envelope] = []
    deadline = time.monotonic() + timeout_s
    while not all(reader.at_end.values()) and time.monotonic() < deadline:
        read += reader.read(3, 0.5)
    assert all(reader.at_end.values()), reader.at_end
    return read


def test_the_label_reader_tells_the_partitions_read_to_their_end(
    stack: Stack, tmp_path: Path
) -> None:
    declaration = "partitions: 3\nretention_ms: 3600000\n"
    with own_topic(stack, tmp_path, "it.labels", declaration) as topic:
        run = uuid.uuid4().hex[:8]
        transactional = Producer(
            {"bootstrap.servers": stack.bootstrap, "transactional.id": f"it-labels-{run}"}
        )
        transactional.init_transactions(30)
        for _ in range(2):  # each commit leaves a marker at the offset after its records
            transactional.begin_transaction()
            for i in range(5):
                transactional.produce(topic, b"label-%d" % i, partition=0)
            transactional.commit_transaction(30)
        plain = Producer({"bootstrap.servers": stack.bootstrap})
        plain.produce(topic, b"plain", partition=1)
        assert plain.flush(30) == 0  # partition 2 stays empty
        reader = PartitionReader(stack.kafka, topic, {}, group=f"it-labels-{run}")
        try:
            assert reader.at_end == {0: False, 1: False, 2: False}  # nothing heard yet
            read = _read_until_all_at_end(reader)
            assert [(e.partition, e.offset) for e in read if e.partition == 0] == [
                (0, offset) for offset in (0, 1, 2, 3, 4, 6, 7, 8, 9, 10)
            ]
            assert [(e.partition, e.value) for e in read if e.partition != 0] == [(1, b"plain")]

            transactional.begin_transaction()  # a label written after: read, then the end again
            transactional.produce(topic, b"later", partition=0)
            transactional.commit_transaction(30)
            later: list[Envelope] = []
            deadline = time.monotonic() + 30
            while not later and time.monotonic() < deadline:
                later += reader.read(3, 0.5)
            assert [(e.partition, e.value) for e in later] == [(0, b"later")]
            assert _read_until_all_at_end(reader) == []
        finally:
            reader.close()
            transactional.flush(10)
