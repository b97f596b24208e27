"""Adapter: a topic read from chosen offsets, for the operator's commands (`tail`, `dlq
inspect`, `dlq redrive`): up to the end each partition had when the read began, or on for as
long as the caller follows it. Reads `read_committed`: what an aborted transaction wrote is
never shown, nor re-sent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streamproc.adapters.kafka.client_logs import client_config, list_topics
from streamproc.adapters.kafka.reader import envelope_of
from streamproc.config.kafka import KafkaConnection
from streamproc.errors import ConfigError, InfraError
from streamproc.records import Envelope


@dataclass(frozen=True, slots=True)
class StartAt:
    """Where a read starts in each partition: its first record, its end, the first record
    stamped at or after `value` (epoch ms), or the record at offset `value` (clamped to what
    the partition holds)."""

    kind: Literal["earliest", "latest", "time", "offset"]
    value: int = 0


EARLIEST = StartAt("earliest")
LATEST = StartAt("latest")


def partitions_of(client: Any, topic: str, timeout_s: float) -> list[int]:
    """The partitions of `topic`; ConfigError when the cluster has no such topic, InfraError
    when it does not answer."""
    try:
        metadata = list_topics(client, timeout_s, topic).topics.get(topic)
    except KafkaException as exc:
        raise InfraError(f"Kafka did not answer about {topic} in {timeout_s:.0f} s: {exc}") from exc
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise ConfigError(f"no topic {topic} on the cluster (`streamproc topics list` shows them)")
    return sorted(metadata.partitions)


class TopicReader:
    """One topic's partitions, assigned (never subscribed: no rebalance, and the reader's
    group commits nothing unless told to, by a transaction)."""

    def __init__(
        self, kafka: KafkaConnection, topic: str, timeout_s: float, group: str | None = None
    ) -> None:
        """`group`: whose committed offsets `committed` reads and whose metadata a transaction
        commits with; by default a group of its own that never commits (so never exists)."""
        self.topic = topic
        self._timeout_s = timeout_s
        self._consumer = Consumer(
            client_config(
                kafka,
                **{
                    "group.id": group or f"streamproc-read-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,  # how a read learns it reached the end
                    "isolation.level": "read_committed",
                },
            )
        )
        self.partitions = partitions_of(self._consumer, topic, timeout_s)
        self._ends: dict[int, int] = {}
        self._left: set[int] = set()
        self._follow = False
        self._heard = time.monotonic()

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """Each partition's first offset and its end (where the next record will land)."""
        return {p: self._watermarks(p) for p in self.partitions}

    def offsets(self, start: StartAt) -> dict[int, int]:
        """The offset `start` means in each partition."""
        marks = self.watermarks()
        if start.kind == "earliest":
            return {p: low for p, (low, _) in marks.items()}
        if start.kind == "latest":
            return {p: high for p, (_, high) in marks.items()}
        if start.kind == "offset":
            return {p: min(max(start.value, low), high) for p, (low, high) in marks.items()}
        asked = [TopicPartition(self.topic, p, start.value) for p in self.partitions]
        found = self._ask(lambda: self._consumer.offsets_for_times(asked, self._timeout_s))
        # -1: no record stamped at or after the time: start at the end
        return {
            tp.partition: tp.offset if tp.offset >= 0 else marks[tp.partition][1] for tp in found
        }

    def committed(self) -> dict[int, int]:
        """The reader's group's committed offsets, for the partitions that have one."""
        asked = [TopicPartition(self.topic, p) for p in self.partitions]
        found = self._ask(lambda: self._consumer.committed(asked, self._timeout_s))
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

    def open(self, starts: dict[int, int], follow: bool = False) -> None:
        """Start reading each partition of `starts` at its offset: up to the end it has now,
        or on with `follow`."""
        self._follow = follow
        self._ends = {p: high for p, (_, high) in self.watermarks().items()}
        assigned = [p for p in sorted(starts) if follow or starts[p] < self._ends[p]]
        self._left = set(assigned)
        self._consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in assigned])
        self._heard = time.monotonic()

    @property
    def finished(self) -> bool:
        """Whether every partition has been read to its end (never, when following)."""
        return not self._follow and not self._left

    @property
    def following(self) -> bool:
        return self._follow

    def read(self, max_records: int = 500, timeout_s: float = 1.0) -> list[Envelope]:
        """The next records, at most `max_records`, waiting up to `timeout_s` for the first."""
        records = []
        messages = self._consumer.consume(max_records, timeout=timeout_s)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise InfraError(f"reading {self.topic}: {error}")
                self._passed(message.partition() or 0)
                continue
            record = envelope_of(message)
            end = self._ends[record.partition]
            if self._follow or record.offset < end:
                records.append(record)
            if record.offset + 1 >= end:  # the last record the read began with, or later
                self._passed(record.partition)
        if messages:
            self._heard = time.monotonic()
        elif self._left and not self._follow and time.monotonic() - self._heard > self._timeout_s:
            raise InfraError(
                f"reading {self.topic}: no record and no end of partition from Kafka in "
                f"{self._timeout_s:.0f} s (partitions {sorted(self._left)} unfinished)"
            )
        return records

    def group_metadata(self) -> Any:
        """What a transaction commits the reader's offsets with."""
        return self._consumer.consumer_group_metadata()

    def close(self) -> None:
        self._consumer.close()

    def _passed(self, partition: int) -> None:
        if not self._follow:
            self._left.discard(partition)

    def _watermarks(self, partition: int) -> tuple[int, int]:
        asked = TopicPartition(self.topic, partition)
        marks = self._ask(lambda: self._consumer.get_watermark_offsets(asked, self._timeout_s))
        if marks is None:  # confluent-kafka's answer to a timeout
            raise InfraError(f"Kafka did not answer about {self.topic} in {self._timeout_s:.0f} s")
        return (int(marks[0]), int(marks[1]))

    def _ask(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except KafkaException as exc:
            raise InfraError(f"Kafka did not answer about {self.topic}: {exc}") from exc
