"""Adapter: Kafka administration through confluent-kafka's AdminClient (topics, their configs)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import (
    Consumer,
    KafkaException,
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

from streamproc.adapters.kafka.client_logs import client_config, list_topics
from streamproc.config.kafka import KafkaConnection
from streamproc.config.topics import Plan, TopicSpec, TopicState
from streamproc.errors import InfraError, Unavailable


class TopicLister(Protocol):
    """What a worker needs to know of the cluster before it starts."""

    def list_topic_names(self) -> list[str]: ...


class KafkaAdmin:
    """Reads topic state and applies a topology plan; every call has a timeout."""

    def __init__(
        self,
        kafka: KafkaConnection,
        extra: dict[str, str] | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self._client = AdminClient(client_config(kafka, **(extra or {})))
        self._kafka = kafka
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
        deadline = time.monotonic() + self._timeout_s
        while True:
            waiting = self._unserved(specs, max(deadline - time.monotonic(), 1.0))
            if not waiting:
                return
            if time.monotonic() > deadline:
                problems = [f"{where}: {error}" for where, error in waiting.items()]
                raise InfraError(
                    f"created partitions not served after {self._timeout_s:.0f}s: "
                    + ", ".join(problems[:10])
                )
            time.sleep(0.1)

    def _unserved(self, specs: Sequence[TopicSpec], timeout_s: float) -> dict[str, str]:
        """Each partition of `specs` that does not answer yet, with the Kafka error why.

        A fresh metadata request per topic first: list_offsets finds leaders in librdkafka's
        cache, which keeps an "unknown topic" answered before the broker had the new topic
        for up to metadata.max.age.ms (its expiry queue is FIFO, behind older entries), and
        fails on it at once ("No leaders found") without asking the broker again.
        """
        waiting: dict[str, str] = {}
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        requests: dict[TopicPartition, Any] = {}
        for spec in specs:
            try:
                topic = self._client.list_topics(spec.name, timeout=timeout_s).topics[spec.name]
                topic_error = None if topic.error is None else topic.error.name()
            except KafkaException as exc:
                topic, topic_error = None, exc.args[0].name()
            for partition in range(spec.partitions):
                where = f"{spec.name}[{partition}]"
                meta = None if topic is None else topic.partitions.get(partition)
                if topic_error is not None or meta is None:
                    waiting[where] = topic_error or "UNKNOWN_PARTITION"
                elif meta.error is not None:
                    waiting[where] = meta.error.name()
                elif meta.leader < 0:
                    waiting[where] = "LEADER_NOT_AVAILABLE"
                else:
                    requests[TopicPartition(spec.name, partition)] = latest
        if requests:
            futures = self._client.list_offsets(requests, request_timeout=timeout_s)
            for asked, future in futures.items():
                try:
                    future.result(timeout=timeout_s)
                except KafkaException as exc:
                    waiting[f"{asked.topic}[{asked.partition}]"] = exc.args[0].name()
        self._serve_logs()
        return waiting

    def _metadata(self) -> Any:
        try:
            return list_topics(self._client, self._timeout_s)
        except KafkaException as exc:
            raise InfraError(
                f"Kafka at {self._kafka} did not answer within {self._timeout_s:.0f}s "
                f"({exc}); "
                "is it running (make up), is STREAMPROC_KAFKA_BOOTSTRAP right, and does its "
                "listener speak STREAMPROC_KAFKA_SECURITY_PROTOCOL?"
            ) from exc
        finally:
            self._serve_logs()

    def _wait(self, futures: dict[Any, Any], what: str) -> dict[Any, Any]:
        results = {}
        failures = []
        for key, future in futures.items():
            try:
                results[key] = future.result(timeout=self._timeout_s)
            except Exception as exc:  # each future fails on its own; report them all
                failures.append(f"{key}: {exc}")
        self._serve_logs()
        if failures:
            raise InfraError(f"could not {what}: " + "; ".join(failures))
        return results

    def _serve_logs(self) -> None:
        """An admin client hands over librdkafka's log lines and errors only when polled."""
        self._client.poll(0)


def end_offsets(kafka: KafkaConnection, topic: str) -> list[TopicPartition]:
    """Each partition of `topic` at its high watermark: where the next record will land."""
    consumer = Consumer(client_config(kafka, **{"group.id": "streamproc-offsets"}))
    try:
        partitions = list_topics(consumer, 10, topic).topics[topic].partitions
        return [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in sorted(partitions)
        ]
    finally:
        consumer.close()


def watermarks(kafka: KafkaConnection, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of `topic`: its first offset still kept and its high watermark."""
    consumer = Consumer(client_config(kafka, **{"group.id": "streamproc-offsets"}))
    try:
        partitions = list_topics(consumer, 10, topic).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in sorted(partitions)
        }
    except KafkaException as exc:
        raise Unavailable("kafka", f"watermarks of {topic}: {exc}") from exc
    finally:
        consumer.close()


def holds_data(kafka: KafkaConnection, topic: str, partition: int, offset: int) -> bool:
    """Whether `offset` of the partition is a record, not a transaction's commit or abort
    marker (a reader never returns those, nor is positioned after the last one)."""
    consumer = Consumer(
        client_config(
            kafka,
            **{"group.id": "streamproc-offsets", "isolation.level": "read_uncommitted"},
        )
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return bool(message.offset() == offset)
        return False  # nothing to return at that offset: a marker
    finally:
        consumer.close()


def offsets_at(kafka: KafkaConnection, topic: str, time_ms: int) -> list[TopicPartition]:
    """Each partition of `topic` at its first record logged at `time_ms` or later (its high
    watermark if none is)."""
    consumer = Consumer(client_config(kafka, **{"group.id": "streamproc-offsets"}))
    try:
        partitions = list_topics(consumer, 10, topic).topics[topic].partitions
        asked = [TopicPartition(topic, p, time_ms) for p in sorted(partitions)]
        found: list[TopicPartition] = consumer.offsets_for_times(asked, timeout=10)
        return [
            tp
            if tp.offset >= 0
            else TopicPartition(topic, tp.partition, consumer.get_watermark_offsets(tp)[1])
            for tp in found
        ]
    except KafkaException as exc:
        raise Unavailable("kafka", f"offsets of {topic} at {time_ms}: {exc}") from exc
    finally:
        consumer.close()


def start_group_at(kafka: KafkaConnection, group: str, offsets: list[TopicPartition]) -> None:
    """Commit `offsets` for a new consumer group, so it starts there (skipping what is before)."""
    consumer = Consumer(client_config(kafka, **{"group.id": group}))
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def committed_metadata(kafka: KafkaConnection, group: str, topics: Sequence[str]) -> set[str]:
    """The metadata `group` committed with its offsets on `topics` (the Redis state epoch a
    worker commits with: see adapters/redis/marker.py); empty for none."""
    committed = _committed(kafka, group, topics)
    return {tp.metadata for tp in committed if tp.offset >= 0 and tp.metadata}


def committed_offsets(kafka: KafkaConnection, group: str, topic: str) -> dict[int, int]:
    """The offsets `group` committed on `topic`, for the partitions that have one."""
    return {tp.partition: tp.offset for tp in _committed(kafka, group, [topic]) if tp.offset >= 0}


def _committed(kafka: KafkaConnection, group: str, topics: Sequence[str]) -> list[TopicPartition]:
    consumer = Consumer(client_config(kafka, **{"group.id": group}))
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        committed: list[TopicPartition] = consumer.committed(partitions, timeout=10)
    except KafkaException as exc:
        raise Unavailable("kafka", f"committed offsets of {group}: {exc}") from exc
    finally:
        consumer.close()
    return committed
