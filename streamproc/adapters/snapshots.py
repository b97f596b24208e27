"""Edge: the compacted snapshot topic: publish a record and wait for its ack; read what the
topic holds, then follow what comes after (blocking calls: run them in a thread)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streamproc.adapters.kafka import make_producer
from streamproc.adapters.kafka_logging import client_config
from streamproc.errors import InfraError

Keep = Callable[[str, bytes, bytes], bool]  # (key, kept, newer) → the newer replaces it?


QUEUED_KBYTES = 1_024  # the consumer's read-ahead, beyond one fetch: see _open


def _last_wins(_key: str, _kept: bytes, _newer: bytes) -> bool:
    return True


class SnapshotTopic:
    """Records keyed `<pipeline>/models` (a trainer's state) and `<pipeline>/champion` (who
    serves); compaction keeps the latest of each."""

    def __init__(self, bootstrap: str, topic: str, timeout_s: float = 30.0) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._producer: Any = None
        self._consumer: Any = None
        self._positions: dict[int, int] = {}

    def publish(self, key: str, value: bytes) -> None:
        """Returns once the broker has acked it; raises InfraError otherwise."""
        if self._producer is None:
            self._producer = make_producer(self._bootstrap, **{"message.max.bytes": 16_777_216})
        failures: list[str] = []

        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        self._producer.produce(self.topic, value, key.encode(), on_delivery=on_delivery)
        if self._producer.flush(self._timeout_s) or failures:
            raise InfraError(f"snapshot {key} not acked by {self.topic}: {failures[:1]}")

    def read_new(self, prefix: str, keep: Keep = _last_wins) -> dict[str, bytes]:
        """Per key under `prefix`, the record `keep` prefers among those written since the
        last call (the whole topic on the first). Other deployments' records are skipped as
        they are read, so memory holds one record per key of ours."""
        consumer = self._consumer or self._open()
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
                raise InfraError(f"{self.topic}: could not read to its end in {self._timeout_s}s")
            for message in consumer.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise InfraError(f"{self.topic}: {error}")
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
            self._producer = make_producer(self._bootstrap, **{"message.max.bytes": 16_777_216})
        for key in keys:
            self._producer.produce(self.topic, None, key.encode())
        self._producer.flush(self._timeout_s)

    def _open(self) -> Any:
        consumer = Consumer(
            client_config(
                self._bootstrap,
                **{
                    "group.id": f"streamproc-snapshots-{uuid.uuid4().hex[:8]}",  # never commits
                    "enable.auto.commit": False,
                    "fetch.message.max.bytes": 16_777_216,
                    # librdkafka fetches ahead into a local queue of up to 64 MB by default,
                    # whether or not we read: an idle consumer filled it with every snapshot
                    # published (a trainer's, after its restore: +66 MB in
                    # benchmarks/memory_bench.py --broker). We read in bursts, to the end:
                    # ahead of that, one fetch (which may overshoot this) is enough.
                    "queued.max.messages.kbytes": QUEUED_KBYTES,
                },
            )
        )
        try:
            metadata = consumer.list_topics(self.topic, timeout=self._timeout_s)
        except KafkaException as exc:
            raise InfraError(f"{self.topic}: no metadata: {exc}") from exc
        partitions = sorted(metadata.topics[self.topic].partitions)
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
        self._positions = {p: 0 for p in partitions}
        self._consumer = consumer
        return consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
