"""Adapter: the compacted snapshot topic: publish a record and wait for its ack; read what the
topic holds, then follow what comes after (blocking calls: run them in a thread)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streamproc.adapters.kafka.client_logs import (
    check_consumed_error,
    client_config,
    flush,
    list_topics,
)
from streamproc.adapters.kafka.producer import lost_for_want_of_a_broker, make_producer
from streamproc.config.kafka import KafkaConnection
from streamproc.errors import InfraError, Unavailable

Keep = Callable[[str, bytes, bytes], bool]  # (key, kept, newer) → the newer replaces it?


# The consumer's read-ahead while it reads: room for the largest snapshot (the topic's
# max.message.bytes). With 1 MB, below one multi-MB snapshot, each record waited out a fetch:
# 51 MB of snapshots took 13-20 s to read, against 1 s. Between reads the partitions are
# paused, so nothing is fetched ahead then (see read_new).
QUEUED_KBYTES = 16_384


def last_wins(_key: str, _kept: bytes, _newer: bytes) -> bool:
    return True


class SnapshotLog(Protocol):
    """What a trainer and a follower use of the snapshot topic: a test or a benchmark hands
    them one in memory."""

    def publish(self, key: str, value: bytes) -> None: ...

    def read_new(self, prefix: str, keep: Keep) -> dict[str, bytes]: ...

    def close(self) -> None: ...


class SnapshotTopic:
    """Records keyed `<pipeline>/models` (a trainer's state) and `<pipeline>/champion` (who
    serves); compaction keeps the latest of each."""

    def __init__(self, kafka: KafkaConnection, topic: str, timeout_s: float = 30.0) -> None:
        self.topic = topic
        self._kafka = kafka
        self._timeout_s = timeout_s
        self._producer: Any = None
        self._consumer: Any = None
        self._positions: dict[int, int] = {}

    def publish(self, key: str, value: bytes) -> None:
        """Returns once the broker has acked it. Raises Unavailable if it was not acked in
        time or failed in a way worth trying again (the broker down), InfraError if the
        broker refused it for good."""
        if self._producer is None:
            self._producer = make_producer(self._kafka, **{"message.max.bytes": 16_777_216})
        failures: list[Any] = []

        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(error)

        self._producer.produce(self.topic, value, key.encode(), on_delivery=on_delivery)
        unacked = flush(self._producer, self._timeout_s)
        refused = [error for error in failures if not lost_for_want_of_a_broker(error)]
        if refused:
            raise InfraError(f"snapshot {key} refused by {self.topic}: {refused[0].str()}")
        if unacked or failures:
            # not sent later behind the caller's back: the caller takes a newer one instead
            self._producer.purge(in_flight=False)
            reason = failures[0].str() if failures else f"not acked in {self._timeout_s:g} s"
            raise Unavailable("kafka", f"snapshot {key} to {self.topic}: {reason}")

    def read_new(self, prefix: str, keep: Keep = last_wins) -> dict[str, bytes]:
        """Per key under `prefix`, the record `keep` prefers among those written since the
        last call (the whole topic on the first). Other deployments' records are skipped as
        they are read, so memory holds one record per key of ours."""
        consumer = self._consumer or self._open()
        partitions = [TopicPartition(self.topic, p) for p in self._positions]
        consumer.resume(partitions)
        try:
            return self._read_to_end(consumer, prefix, keep)
        except KafkaException as exc:  # the broker restarting, say: the next read may do
            raise Unavailable("kafka", f"{self.topic}: {exc}") from exc
        finally:
            # Paused, an idle consumer fetches nothing: left fetching, it queued every snapshot
            # published after the read (a trainer's own, up to librdkafka's 64 MB default:
            # +66 MB of RSS). Resumed, it reads on from what was consumed.
            consumer.pause(partitions)

    def _read_to_end(self, consumer: Any, prefix: str, keep: Keep) -> dict[str, bytes]:
        ends = {
            p: consumer.get_watermark_offsets(
                TopicPartition(self.topic, p), timeout=self._timeout_s
            )[1]
            for p in self._positions
        }
        found: dict[str, bytes] = {}
        deadline = time.monotonic() + self._timeout_s
        while any(self._positions[p] < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise Unavailable(
                    "kafka", f"{self.topic}: could not read to its end in {self._timeout_s}s"
                )
            # consume(n) waits for n records or the whole timeout: keep it short, the loop
            # ends as soon as the positions reach the ends
            for message in consumer.consume(500, timeout=0.05):
                error = message.error()
                if error is not None:
                    check_consumed_error(error, self.topic)
                    continue
                self._positions[message.partition()] = message.offset() + 1
                key, value = message.key(), message.value()
                if key is None or value is None or not key.startswith(prefix.encode()):
                    continue
                name = key.decode()
                if name not in found or keep(name, found[name], value):
                    found[name] = value
        return found

    def forget(self, keys: list[str]) -> None:
        """Tombstones: compaction drops these keys (a finished demo's or test's models)."""
        if self._producer is None:
            self._producer = make_producer(self._kafka, **{"message.max.bytes": 16_777_216})
        for key in keys:
            self._producer.produce(self.topic, None, key.encode())
        flush(self._producer, self._timeout_s)

    def _open(self) -> Any:
        consumer = Consumer(
            client_config(
                self._kafka,
                **{
                    "group.id": f"streamproc-snapshots-{uuid.uuid4().hex[:8]}",  # never commits
                    "enable.auto.commit": False,
                    "fetch.message.max.bytes": 16_777_216,
                    "queued.max.messages.kbytes": QUEUED_KBYTES,
                    # a resumed read's first fetch answers at once (librdkafka's 500 ms default
                    # held every poll that long); paused, it sends no fetches at all
                    "fetch.wait.max.ms": 50,
                },
            )
        )
        try:
            metadata = list_topics(consumer, self._timeout_s, self.topic)
        except KafkaException as exc:
            raise Unavailable("kafka", f"{self.topic}: no metadata: {exc}") from exc
        partitions = sorted(metadata.topics[self.topic].partitions)
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._positions = {p: 0 for p in partitions}
        self._consumer = consumer
        return consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
