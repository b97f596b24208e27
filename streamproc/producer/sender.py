"""Producer SDK: the Producer: each record checked against its topic's schema, encoded in the
Confluent wire format by the service's own serde, and sent by an idempotent confluent-kafka
producer; each send is a future of its delivery, and may have a callback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

from confluent_kafka import KafkaException

from streamproc.adapters.avro.validation import problems
from streamproc.adapters.kafka.client_logs import flush, list_topics
from streamproc.adapters.kafka.producer import make_producer
from streamproc.config.kafka import KafkaConnection
from streamproc.errors import ConfigError, InfraError
from streamproc.producer.delivery import Delivery, OnDelivery
from streamproc.producer.environment import read_environment
from streamproc.producer.errors import (
    DeliveryFailed,
    InvalidRecord,
    NotFlushed,
    ProducerClosed,
    UnknownTopic,
)
from streamproc.producer.schemas import Schemas
from streamproc.producer.topics import SHOP_TOPICS, KeyFunction, pipeline_topics, shop_key

# Not the caller's to change: without them a retry may duplicate or reorder records.
_IDEMPOTENT = {"enable.idempotence": True, "acks": "all"}
_METADATA_TIMEOUT_S = 15.0
_ROOM_WAIT_S = 0.1  # a send that meets a full queue serves acks this long, then tries again
_IDLE_WAIT_S = 0.5  # the delivery thread's nap while nothing awaits an ack
_POLL_S = 0.1
_CLOSE_MARGIN_S = 5.0  # past the delivery timeout, librdkafka has answered every record


class ProducerClient(Protocol):
    """The part of confluent_kafka.Producer this uses (tests pass a fake)."""

    def produce(
        self, topic: str, value: bytes, key: bytes | None, *, on_delivery: Callable[..., None]
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...

    def purge(self) -> None: ...

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any: ...


@dataclass(frozen=True, slots=True)
class SendOptions:
    """How records are batched, and how long librdkafka tries to deliver one. Idempotence
    (acks from every in-sync replica; no duplicate and no reordering on a retry) is always on."""

    linger_ms: float = 20  # how long a record waits for others to share its request
    batch_bytes: int = 1_000_000  # the most bytes of one partition's batch
    queue_records: int = 100_000  # records held unacked; past it, a send waits for room
    delivery_timeout_s: float = 120  # retried this long, then reported as DeliveryFailed
    extra: Mapping[str, Any] = field(default_factory=dict)  # other librdkafka properties

    def properties(self) -> dict[str, Any]:
        clash = sorted(self.extra.keys() & _IDEMPOTENT.keys())
        if clash:
            raise ConfigError(
                f"SendOptions.extra sets {', '.join(clash)}: the producer is always "
                "idempotent with acks=all; leave them out"
            )
        return {
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_bytes,
            "queue.buffering.max.messages": self.queue_records,
            "message.timeout.ms": int(self.delivery_timeout_s * 1000),
            # a misspelt topic is an error, never a new topic
            "allow.auto.create.topics": False,
            **self.extra,
            **_IDEMPOTENT,
        }


class Producer:
    """Sends records to the service's input topics as it expects them.

    A record is checked against the version of its topic's schema whose field names it fits
    (the newest of them, else the closest) before anything is sent, and written with that
    version (InvalidRecord names each bad field); a topic without a schema here, or missing on the
    cluster, is UnknownTopic. Sends are asynchronous: `send` returns a Delivery (a future) and
    calls `on_delivery` with the outcome, from the producer's delivery thread. `flush` waits
    for the acks; `close`, or leaving a `with` block, flushes and stops. Keys: the shop's own
    (an order by its customer, a label by its event_id) unless `key` is given.
    """

    def __init__(  # noqa: PLR0913 - each a documented choice; past the first two, by name only
        self,
        kafka: KafkaConnection | str,
        schemas: Schemas | None = None,
        *,
        topics: Mapping[str, str] = SHOP_TOPICS,
        key: KeyFunction | None = None,
        options: SendOptions | None = None,
        client: ProducerClient | None = None,
    ) -> None:
        """`kafka`: a bootstrap list (plaintext), or a KafkaConnection with TLS and SASL.
        `schemas`: the schemas folder and registry (default: ./schemas, embedded ids).
        `topics`: topic -> schema name (default: the reference pipeline's inputs). `client`:
        a confluent_kafka.Producer-like client; None: one made from `kafka` and `options`."""
        self._kafka = KafkaConnection(kafka) if isinstance(kafka, str) else kafka
        self._catalog, self._serde = (schemas or Schemas()).load()
        for schema_name in topics.values():
            self._catalog.latest(schema_name)  # ConfigError now, not at the first send
        self._topics = dict(topics)
        self._key = key
        self._options = options or SendOptions()
        # not `client or`: a client's len() is its queue, 0 when it is empty
        self._client: ProducerClient = (
            client
            if client is not None
            else make_producer(self._kafka, **self._options.properties())
        )
        self._on_cluster: set[str] = set()
        self._in_flight: dict[int, Delivery] = {}
        self._answered = threading.Condition()
        self._sent = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._failure: Exception | None = None
        self._thread = threading.Thread(
            target=self._serve, name="streamproc-producer-deliveries", daemon=True
        )
        self._thread.start()

    @classmethod
    def from_settings(
        cls,
        *,
        topics: Mapping[str, str] | None = None,
        key: KeyFunction | None = None,
        options: SendOptions | None = None,
    ) -> Producer:
        """A producer for the service's environment: STREAMPROC_KAFKA_* (brokers, TLS, SASL),
        STREAMPROC_SCHEMAS_DIR and STREAMPROC_SCHEMA_REGISTRY_*; it sends to the topics the
        pipeline STREAMPROC_PIPELINE reads, unless `topics` names others. ConfigError names a
        bad variable."""
        env = read_environment()
        if topics is None:
            topics = pipeline_topics(env.pipeline)
        return cls(env.kafka, env.schemas, topics=topics, key=key, options=options)

    def send(
        self,
        topic: str,
        record: Mapping[str, Any],
        *,
        key: bytes | str | None = None,
        on_delivery: OnDelivery | None = None,
    ) -> Delivery:
        """Validates, encodes and hands `record` over; returns its Delivery at once. A full
        local queue makes it wait for acks first. `key` overrides the key function.

        Raises InvalidRecord, UnknownTopic or ProducerClosed, and sends nothing then (and
        InfraError when Kafka gives no metadata on the first send to a topic). A record
        the producer refuses for itself (over its size limit) is a failed Delivery, as one the
        broker refuses is."""
        self._check_open()
        schema_name = self._schema_of(topic)
        # Written as the version its field names fit: a service still on v1 keeps sending v1
        # records after v2 is added, and one on v2 sends v2; the worker reads both alike.
        keys = record.keys() if isinstance(record, Mapping) else ()
        version = self._catalog.writer_for(schema_name, keys)
        found = problems(record, version.parsed)
        if found:
            raise InvalidRecord(schema_name, found, version.version)
        value = self._serde.encode(topic, schema_name, record)
        if key is None:
            key = self._key(topic, record) if self._key else shop_key(schema_name, record)
        delivery = Delivery(
            topic, key.encode() if isinstance(key, str) else key, record, on_delivery
        )
        self._produce(delivery, value)
        return delivery

    def send_many(
        self,
        topic: str,
        records: Iterable[Mapping[str, Any]],
        *,
        on_delivery: OnDelivery | None = None,
    ) -> int:
        """Sends each record as `send` does, as fast as the broker acks them: a full queue
        makes it wait (backpressure), so an iterable of any length holds only the unacked
        records in memory. Returns the count sent; outcomes go to `on_delivery`. Stops at the
        first invalid record (InvalidRecord): the ones before it are sent."""
        count = 0
        for record in records:
            self.send(topic, record, on_delivery=on_delivery)
            count += 1
        return count

    def flush(self, timeout_s: float = 30.0) -> list[Delivery]:
        """Waits up to `timeout_s` for every record sent to be acked or failed; returns the
        deliveries still unanswered, in the order sent (none: all answered)."""
        self._check_open()
        return self._wait_answered(timeout_s)

    def close(self, timeout_s: float = 30.0) -> list[Delivery]:
        """Flushes up to `timeout_s`, then stops. Returns the deliveries not answered in
        time: purged (librdkafka sends them no more; one already on its way may have landed)
        and failed with DeliveryFailed. Sends raise ProducerClosed from now on; a second close
        returns []."""
        if self._closed:
            return []
        self._closed = True
        try:  # a failed client answers nothing more: its records were failed already
            return [] if self._failure is not None else self._wait_answered(timeout_s)
        finally:
            self._stopping.set()
            self._sent.set()
            self._thread.join()
            self._abandon()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Waits for every ack: at most the delivery timeout, after which librdkafka has
        answered every record. NotFlushed if some were not, unless the block raised."""
        timeout_s = self._options.delivery_timeout_s + _CLOSE_MARGIN_S
        left = self.close(timeout_s)
        if left and exc_type is None:
            raise NotFlushed(left, timeout_s)

    def _check_open(self) -> None:
        if self._failure is not None:
            raise ProducerClosed(
                f"the producer failed for good: {self._failure}"
            ) from self._failure
        if self._closed:
            raise ProducerClosed("this producer is closed; make a new one to send")

    def _schema_of(self, topic: str) -> str:
        schema_name = self._topics.get(topic)
        if schema_name is None:
            known = ", ".join(f"{t} ({s})" for t, s in sorted(self._topics.items()))
            raise UnknownTopic(
                f"{topic}: this producer has no schema for it (it sends to {known}); "
                "name it in topics={topic: schema name}"
            )
        if topic not in self._on_cluster:
            try:
                metadata = list_topics(self._client, _METADATA_TIMEOUT_S)
            except KafkaException as exc:
                raise InfraError(f"Kafka at {self._kafka} gave no metadata: {exc}") from exc
            if topic not in metadata.topics:
                raise UnknownTopic(
                    f"{topic}: Kafka at {self._kafka} has no such topic; create it "
                    "(`streamproc topics apply` creates the declared ones)"
                )
            self._on_cluster.update(metadata.topics)
        return schema_name

    def _produce(self, delivery: Delivery, value: bytes) -> None:
        with self._answered:
            self._in_flight[id(delivery)] = delivery
        try:
            while True:
                try:
                    self._client.produce(
                        delivery.topic,
                        value,
                        delivery.key,
                        on_delivery=lambda error, message: self._report(delivery, error, message),
                    )
                    break
                except BufferError:  # librdkafka's queue is full: serve acks to make room
                    self._client.poll(_ROOM_WAIT_S)
                except KafkaException as exc:  # refused before it was sent: too large, say
                    self._report(delivery, exc.args[0], None)
                    return
        except BaseException:
            with self._answered:
                self._in_flight.pop(id(delivery), None)
            raise
        self._sent.set()

    def _abandon(self) -> None:
        """Purges what is unanswered, so that librdkafka sends none of it later, and fails it."""
        with self._answered:
            left = list(self._in_flight.values())
        if not left:
            return
        self._client.purge()
        for delivery in left:
            self._settle_failed(
                delivery, "abandoned when the producer closed; it may have reached the broker"
            )

    def _report(self, delivery: Delivery, error: Any | None, message: Any | None) -> None:
        delivery.report(error, message)
        self._answered_one(delivery)

    def _settle_failed(self, delivery: Delivery, detail: str) -> None:
        delivery.settle(DeliveryFailed(delivery.topic, delivery.record, None, detail))
        self._answered_one(delivery)

    def _answered_one(self, delivery: Delivery) -> None:
        with self._answered:
            self._in_flight.pop(id(delivery), None)
            self._answered.notify_all()

    def _wait_answered(self, timeout_s: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout_s
        flush(self._client, timeout_s)
        with self._answered:
            # librdkafka counts a report as served once taken, before its callback is done
            self._answered.wait_for(
                lambda: not self._in_flight, max(deadline - time.monotonic(), 0)
            )
            return list(self._in_flight.values())

    def _serve(self) -> None:
        """The delivery thread: serves librdkafka's reports while records await acks, so
        futures settle with nobody polling; naps otherwise."""
        while not self._stopping.is_set():
            if not self._in_flight:
                self._sent.wait(_IDLE_WAIT_S)
                self._sent.clear()
                continue
            try:
                self._client.poll(_POLL_S)
            except Exception as exc:  # Kafka refused the login or TLS (client_logs), or worse
                self._failure = exc
                with self._answered:
                    waiting = list(self._in_flight.values())
                for delivery in waiting:
                    self._settle_failed(delivery, f"the producer failed: {exc}")
                return
