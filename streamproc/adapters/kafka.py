"""Edge: Kafka administration through confluent-kafka's AdminClient (topics, their configs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from streamproc.errors import InfraError
from streamproc.events import Envelope, Headers, OutRecord
from streamproc.topology import Plan, TopicSpec, TopicState


class TopicLister(Protocol):
    """What a worker needs to know of the cluster before it starts."""

    def list_topic_names(self) -> list[str]: ...


class KafkaAdmin:
    """Reads topic state and applies a topology plan; every call has a timeout."""

    def __init__(
        self, bootstrap: str, extra: dict[str, str] | None = None, timeout_s: float = 15.0
    ) -> None:
        self._client = AdminClient({"bootstrap.servers": bootstrap, **(extra or {})})
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s

    def list_topic_names(self) -> list[str]:
        metadata = self._metadata()
        return sorted(name for name in metadata.topics if not name.startswith("__"))

    def read_state(self, specs: Sequence[TopicSpec]) -> dict[str, TopicState]:
        """The cluster's view of the declared topics that exist, with their declared configs."""
        topics = self._metadata().topics
        existing = [spec for spec in specs if spec.name in topics]
        if not existing:
            return {}
        resources = [ConfigResource(ResourceType.TOPIC, spec.name) for spec in existing]
        configs = self._wait(self._client.describe_configs(resources), "describe topic configs")
        states = {}
        for spec, resource in zip(existing, resources, strict=True):
            entries = configs[resource]
            partitions = topics[spec.name].partitions
            replicas = min((len(p.replicas) for p in partitions.values()), default=0)
            declared = {key: entries[key].value for key in spec.config if key in entries}
            states[spec.name] = TopicState(spec.name, len(partitions), replicas, declared)
        return states

    def apply(self, plan: Plan) -> None:
        """Create missing topics and set changed configs (incrementally: others are kept)."""
        if plan.create:
            new_topics = [
                NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config))
                for s in plan.create
            ]
            self._wait(self._client.create_topics(new_topics), "create topics")
            self._wait_until_usable(plan.create)
        if plan.alter:
            resources = [
                ConfigResource(
                    ResourceType.TOPIC,
                    name,
                    incremental_configs=[
                        ConfigEntry(key, new, incremental_operation=AlterConfigOpType.SET)
                        for key, (_old, new) in changes.items()
                    ],
                )
                for name, changes in plan.alter.items()
            ]
            self._wait(self._client.incremental_alter_configs(resources), "alter topic configs")

    def _wait_until_usable(self, specs: Sequence[TopicSpec]) -> None:
        """Return once every partition of `specs` answers an offsets request.

        Metadata names a leader a few hundred ms before the leader serves requests, so a
        client that starts right after `topics apply` would otherwise see NOT_LEADER errors.
        """
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        requests = {
            TopicPartition(spec.name, partition): latest
            for spec in specs
            for partition in range(spec.partitions)
        }
        deadline = time.monotonic() + self._timeout_s
        while True:
            futures = self._client.list_offsets(requests, request_timeout=self._timeout_s)
            waiting = []
            for partition, future in futures.items():
                try:
                    future.result(timeout=self._timeout_s)
                except KafkaException:
                    waiting.append(f"{partition.topic}[{partition.partition}]")
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise InfraError(
                    f"created partitions not served after {self._timeout_s:.0f}s: "
                    + ", ".join(waiting[:10])
                )
            time.sleep(0.1)

    def _metadata(self) -> Any:
        try:
            return self._client.list_topics(timeout=self._timeout_s)
        except KafkaException as exc:
            raise InfraError(
                f"Kafka at {self._bootstrap} did not answer within {self._timeout_s:.0f}s "
                f"({exc}); "
                "is it running (make up) and is STREAMPROC_KAFKA_BOOTSTRAP right?"
            ) from exc

    def _wait(self, futures: dict[Any, Any], what: str) -> dict[Any, Any]:
        results = {}
        failures = []
        for key, future in futures.items():
            try:
                results[key] = future.result(timeout=self._timeout_s)
            except Exception as exc:  # each future fails on its own; report them all
                failures.append(f"{key}: {exc}")
        if failures:
            raise InfraError(f"could not {what}: " + "; ".join(failures))
        return results


def make_producer(bootstrap: str, **overrides: Any) -> Producer:
    """Idempotent (acks from all in-sync replicas, no duplicates or reordering on retry); the
    murmur2 partitioner puts a key where Java clients and aiokafka put it."""
    config = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
        **overrides,
    }
    return Producer(config)


def produce_all(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes, int | None]]
) -> int:
    """Send (key, value, timestamp ms) records and wait for every ack; returns the count."""
    return produce_records(bootstrap, ((topic, *record) for record in records))


def produce_records(
    bootstrap: str,
    records: Iterable[tuple[str, bytes | None, bytes, int | None]],
    per_second: float | None = None,
) -> int:
    """Send (topic, key, value, timestamp ms) records, at most `per_second` (None: as fast
    as the broker takes them), and wait for every ack; returns the count."""
    producer = make_producer(
        bootstrap, **{"linger.ms": 20, "queue.buffering.max.messages": 1_000_000}
    )
    failures: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    sent, started = 0, time.monotonic()
    for topic, key, value, timestamp_ms in records:
        while True:
            try:
                producer.produce(
                    topic, value, key, on_delivery=on_delivery, timestamp=timestamp_ms or 0
                )
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        sent += 1
        producer.poll(0)
        if per_second and (ahead := sent / per_second - (time.monotonic() - started)) > 0.01:
            time.sleep(ahead)
    if producer.flush(60) or failures:
        raise InfraError(f"{len(failures)} records not delivered: {failures[:3]}")
    return sent


class BatchSender:
    """A worker's output: a batch goes to librdkafka in one pass, then the worker waits, off
    the event loop, until the broker has acked all of it (before the input batch is acked).

    librdkafka batches, compresses and retries in its own threads; a per-record send through
    Python costs several times more (one future and loop wake-up per record).
    """

    def __init__(self, bootstrap: str, ack_timeout_s: float = 60.0) -> None:
        self._producer = make_producer(bootstrap)
        self._ack_timeout_s = ack_timeout_s

    async def send(self, records: Sequence[OutRecord]) -> None:
        """Raises InfraError when a record is not acked in time: nothing may be committed."""
        failures: list[str] = []

        def on_delivery(error: Any, message: Any) -> None:
            if error is not None:
                failures.append(f"{message.topic()}: {error}")

        for record in records:
            while True:
                try:
                    self._producer.produce(
                        record.topic,
                        record.value,
                        record.key,
                        headers=list(record.headers),
                        timestamp=record.timestamp_ms or 0,
                        on_delivery=on_delivery,
                    )
                    break
                except BufferError:  # librdkafka's queue is full: let it drain
                    await asyncio.to_thread(self._producer.poll, 0.1)
        unacked = await asyncio.to_thread(self._producer.flush, self._ack_timeout_s)
        if unacked or failures:
            raise InfraError(
                f"{unacked} records not acked in {self._ack_timeout_s:.0f} s, "
                f"{len(failures)} failed: {failures[:3]}"
            )


def end_offsets(bootstrap: str, topic: str) -> list[TopicPartition]:
    """Each partition of `topic` at its high watermark: where the next record will land."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "streamproc-offsets"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in sorted(partitions)
        ]
    finally:
        consumer.close()


def start_group_at(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    """Commit `offsets` for a new consumer group, so it starts there (skipping what is before)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


class PartitionReader:
    """Reads every partition of a topic from given offsets; it never commits: the reader
    keeps its positions itself (the trainer's are in its snapshots). A partition without a
    given offset starts where `group` has committed one (a new deployment can be started
    at the end of the topic), else at the beginning."""

    def __init__(self, bootstrap: str, topic: str, start: dict[int, int], group: str) -> None:
        self._topic = topic
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        try:
            partitions = self._consumer.list_topics(topic, timeout=15).topics[topic].partitions
            committed = self._consumer.committed(
                [TopicPartition(topic, p) for p in sorted(partitions)], timeout=15
            )
        except KafkaException as exc:
            raise InfraError(f"{topic}: no metadata or offsets: {exc}") from exc
        self._consumer.assign(
            [
                TopicPartition(
                    topic,
                    c.partition,
                    start.get(c.partition, c.offset if c.offset >= 0 else OFFSET_BEGINNING),
                )
                for c in committed
            ]
        )

    def read(self, max_records: int, timeout_s: float) -> list[Envelope]:
        envelopes = []
        for message in self._consumer.consume(max_records, timeout=timeout_s):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise InfraError(f"{self._topic}: {error}")
            kind, stamp = message.timestamp()
            envelopes.append(
                Envelope(
                    self._topic,
                    message.partition() or 0,
                    message.offset() or 0,
                    message.key(),
                    message.value(),
                    cast(Headers, tuple(message.headers() or ())),
                    stamp if kind != TIMESTAMP_NOT_AVAILABLE else None,
                )
            )
        return envelopes

    def close(self) -> None:
        self._consumer.close()
