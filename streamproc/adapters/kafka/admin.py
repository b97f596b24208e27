"""Edge: Kafka administration through confluent-kafka's AdminClient (topics, their configs)."""

from __future__ import annotations

import asyncio
import threading
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

from streamproc.adapters.kafka.client_logs import client_config
from streamproc.adapters.kafka.dlq import (
    MAX_RECORD_BYTES,
    RECORD_REFUSED,
    RECORD_TOO_LARGE,
    wire_size,
)
from streamproc.errors import EventRejected, InfraError
from streamproc.records import Envelope, Headers, OutRecord
from streamproc.spec.topics import Plan, TopicSpec, TopicState


class TopicLister(Protocol):
    """What a worker needs to know of the cluster before it starts."""

    def list_topic_names(self) -> list[str]: ...


class KafkaAdmin:
    """Reads topic state and applies a topology plan; every call has a timeout."""

    def __init__(
        self, bootstrap: str, extra: dict[str, str] | None = None, timeout_s: float = 15.0
    ) -> None:
        self._client = AdminClient(client_config(bootstrap, **(extra or {})))
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
            return self._client.list_topics(timeout=self._timeout_s)
        except KafkaException as exc:
            raise InfraError(
                f"Kafka at {self._bootstrap} did not answer within {self._timeout_s:.0f}s "
                f"({exc}); "
                "is it running (make up) and is STREAMPROC_KAFKA_BOOTSTRAP right?"
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


def make_producer(bootstrap: str, **overrides: Any) -> Producer:
    """Idempotent (acks from all in-sync replicas, no duplicates or reordering on retry); the
    murmur2 partitioner puts a key where Java clients and aiokafka put it."""
    settings = {"linger.ms": 5, "enable.idempotence": True, "partitioner": "murmur2_random"}
    return Producer(client_config(bootstrap, **{**settings, **overrides}))


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


class Acks:
    """The broker's answers for one submitted batch, filled in by librdkafka's delivery
    callbacks (in the sender's poll thread) and awaited on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.refusals: dict[int, Any] = {}  # index -> a per-record refusal (REFUSALS)
        self.failures: list[str] = []
        self._loop = loop
        self._left = count
        self._all = loop.create_future()
        if count == 0:
            self._all.set_result(None)

    def on_delivery(self, index: int, error: Any, message: Any) -> None:
        if error is not None:
            if error.code() in BatchSender.REFUSALS:
                self.refusals[index] = error
            else:
                self.failures.append(f"{message.topic()}: {error}")
        self._left -= 1
        if self._left == 0:
            self._loop.call_soon_threadsafe(_settle, self._all)

    def cancel_one(self) -> None:
        """A record that never reached librdkafka (refused at produce time)."""
        self.on_delivery(-1, None, None)

    async def all_answered(self, ack_timeout_s: float) -> None:
        """Every record acked or refused for itself; InfraError if any failed otherwise."""
        try:  # librdkafka answers every record within message.timeout.ms; the margin is ours
            await asyncio.wait_for(asyncio.shield(self._all), ack_timeout_s + 30)
        except TimeoutError:
            raise InfraError(f"records not acked in {ack_timeout_s:.0f} s") from None
        if self.failures:
            raise InfraError(f"{len(self.failures)} records not acked: {self.failures[:3]}")


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Submitted:
    """A batch handed to librdkafka: `refused()` waits for its acks."""

    def __init__(self, sender: BatchSender, records: Sequence[OutRecord], acks: Acks) -> None:
        self._sender = sender
        self._records = records
        self._acks = acks
        self.refused_early: dict[int, EventRejected] = {}

    async def refused(self) -> dict[int, EventRejected]:
        """Returns once the broker has acked every record it takes, with those refused for
        themselves by index (reason RECORD_TOO_LARGE or RECORD_REFUSED). Raises InfraError
        when a record is not acked in time or Kafka fails otherwise: nothing may be
        committed then."""
        sender, acks = self._sender, self._acks
        await acks.all_answered(sender.ack_timeout_s)
        refused = dict(self.refused_early)
        # The broker refuses a record batch whole for one record in it; sent alone, each
        # shows whether it was that one. Only a topic whose max.message.bytes is below the
        # producer's limit does this; the batch's others then land after later batches.
        for index in sorted(acks.refusals):
            rejected = await sender.send_alone(self._records[index])
            if rejected is not None:
                refused[index] = rejected
        return dict(sorted(refused.items()))


class BatchSender:
    """A worker's output: a batch goes to librdkafka in one pass; its acks are awaited apart,
    so the worker can process the next batch meanwhile (and acks a batch's input only once
    all of its outputs are acked).

    librdkafka batches, compresses and retries in its own threads; a thread of ours serves
    its delivery callbacks, which count each batch's acks down and wake the event loop once.

    A record Kafka refuses for itself (too large, say) is not the batch's failure: it is
    returned, so that its source can go to the DLQ instead.
    """

    # Per record and permanent: a retry cannot help, and no other record is at fault.
    REFUSALS: dict[int, str] = {
        KafkaError.MSG_SIZE_TOO_LARGE: RECORD_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE: RECORD_TOO_LARGE,  # over the topic's segment.bytes
        KafkaError.INVALID_RECORD: RECORD_REFUSED,
        KafkaError.INVALID_TIMESTAMP: RECORD_REFUSED,
    }

    def __init__(self, bootstrap: str, ack_timeout_s: float = 60.0, linger_ms: float = 5) -> None:
        self.ack_timeout_s = ack_timeout_s
        self._producer = make_producer(
            bootstrap,
            **{
                "message.max.bytes": MAX_RECORD_BYTES,
                "message.timeout.ms": int(ack_timeout_s * 1000),
                "linger.ms": linger_ms,
            },
        )
        self._polling: threading.Thread | None = None
        self._closed = threading.Event()
        self._sent = threading.Event()  # records handed over: the poll thread has work

    async def send(self, records: Sequence[OutRecord]) -> None:
        """All of `records` acked, or InfraError: for records with no DLQ to fall back on."""
        refused = await self.offer(records)
        if refused:
            raise InfraError(f"{len(refused)} records refused: {list(refused.values())[:3]}")

    async def offer(self, records: Sequence[OutRecord]) -> dict[int, EventRejected]:
        """Sends `records` and waits for their acks: see Submitted.refused."""
        return await (await self.submit(records)).refused()

    async def submit(self, records: Sequence[OutRecord]) -> Submitted:
        """Hands `records` to librdkafka, in order, and returns without waiting for acks."""
        self._start_polling()
        acks = Acks(asyncio.get_running_loop(), len(records))
        submitted = Submitted(self, records, acks)
        for index, record in enumerate(records):
            while True:
                try:
                    rejected = self._produce(
                        record, lambda e, m, i=index: acks.on_delivery(i, e, m)
                    )
                    break
                except BufferError:  # librdkafka's queue is full: its acks will drain it
                    self._sent.set()
                    await asyncio.sleep(0.005)
            if rejected is not None:
                submitted.refused_early[index] = rejected
                acks.cancel_one()
        self._sent.set()  # after the records: the poll thread finds them waiting
        return submitted

    async def send_alone(self, record: OutRecord) -> EventRejected | None:
        """`record` in a request of its own: None once acked, or why Kafka refused it."""
        self._start_polling()
        acks = Acks(asyncio.get_running_loop(), 1)
        rejected = self._produce(record, lambda e, m: acks.on_delivery(0, e, m))
        if rejected is not None:
            return rejected
        self._sent.set()
        await acks.all_answered(self.ack_timeout_s)
        error = acks.refusals.get(0)
        return None if error is None else self._refusal(record, error, "the broker")

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout_s`), then stop the poll thread."""
        self._closed.set()
        self._sent.set()
        if self._polling is not None:
            self._polling.join(timeout_s)
        self._producer.flush(timeout_s)

    def _start_polling(self) -> None:
        if self._polling is None:
            self._polling = threading.Thread(
                target=self._poll, name="streamproc-producer-acks", daemon=True
            )
            self._polling.start()

    def _poll(self) -> None:
        """Serve delivery callbacks while records await acks; otherwise wait outside
        librdkafka, so an idle sender's thread is never inside the client at teardown."""
        while not self._closed.is_set():
            if len(self._producer) == 0:
                self._sent.wait(0.5)
                self._sent.clear()
                if len(self._producer) == 0:
                    continue
            self._producer.poll(0.05)

    def _produce(self, record: OutRecord, on_delivery: Any) -> EventRejected | None:
        try:
            self._producer.produce(
                record.topic,
                record.value,
                record.key,
                headers=list(record.headers),
                timestamp=record.timestamp_ms or 0,
                on_delivery=on_delivery,
            )
        except KafkaException as exc:
            rejected = self._refusal(record, exc.args[0], "the producer")
            if rejected is None:
                raise InfraError(f"{record.topic}: {exc}") from exc
            return rejected
        return None

    def _refusal(self, record: OutRecord, error: Any, by: str) -> EventRejected | None:
        reason = self.REFUSALS.get(error.code())
        if reason is None:
            return None
        limit = f"; the producer's limit is {MAX_RECORD_BYTES:,} bytes"
        return EventRejected(
            reason,
            f"{by} refused a {wire_size(record):,}-byte record for {record.topic} "
            f"({error.name()}{limit if reason == RECORD_TOO_LARGE else ''})",
        )


def end_offsets(bootstrap: str, topic: str) -> list[TopicPartition]:
    """Each partition of `topic` at its high watermark: where the next record will land."""
    consumer = Consumer(client_config(bootstrap, **{"group.id": "streamproc-offsets"}))
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
    consumer = Consumer(client_config(bootstrap, **{"group.id": group}))
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
            client_config(bootstrap, **{"group.id": group, "enable.auto.commit": False})
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
