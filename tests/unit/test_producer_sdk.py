"""The producer SDK against a fake confluent-kafka client: invalid records refused before a
send with the field named, the shop's keys by default, backpressure on a full queue, delivery
callbacks and futures for acks and refusals, flush and close, and a closed producer."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamproc.errors import ConfigError
from streamproc.producer import (
    Delivered,
    Delivery,
    DeliveryFailed,
    InvalidRecord,
    NotFlushed,
    Producer,
    ProducerClosed,
    Schemas,
    SendOptions,
    UnknownTopic,
)
from streamproc.producer import sender as sender_module
from streamproc.producer.topics import SHOP_TOPICS, pipeline_topics
from tests.builders import ORDER_SUBMITTED, as_decoded, order, order_v2
from tests.conftest import REPO

ORDERS = "shop.order.v1"
OUTCOMES = "shop.order_outcome.v1"
SCHEMAS = Schemas(REPO / "schemas")


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeClient:
    """A confluent_kafka.Producer that keeps what it is given and answers on poll: an ack, or
    `refusal` (a KafkaError) for every record; `hold` answers nothing. Its queue is full for
    the first `full` produce calls; `refuse_now` makes produce raise."""

    def __init__(self, full: int = 0) -> None:
        self.full = full
        self.hold = False
        self.refusal: KafkaError | None = None
        self.refuse_now: KafkaError | None = None
        self.poll_raises: Exception | None = None
        self.cluster = {ORDERS, OUTCOMES}
        self.produced: list[tuple[str, bytes, bytes | None]] = []
        self.polls = 0
        self.purged = False
        self._waiting: list[tuple[Callable[..., None], int]] = []
        self._lock = threading.Lock()

    def produce(
        self, topic: str, value: bytes, key: bytes | None, *, on_delivery: Callable[..., None]
    ) -> None:
        if self.full > 0:
            self.full -= 1
            raise BufferError("Local: Queue full")
        if self.refuse_now is not None:
            raise KafkaException(self.refuse_now)
        with self._lock:
            self.produced.append((topic, value, key))
            self._waiting.append((on_delivery, len(self.produced) - 1))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        if self.poll_raises is not None:
            raise self.poll_raises
        if self.hold or self.purged:
            time.sleep(min(timeout, 0.01))
            return 0
        with self._lock:
            answering, self._waiting = self._waiting, []
        for on_delivery, offset in answering:
            if self.refusal is None:
                on_delivery(None, FakeMessage(3, offset))
            else:
                on_delivery(self.refusal, None)
        if not answering:
            time.sleep(min(timeout, 0.01))
        return len(answering)

    def flush(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            self.poll(0.01)
            if not self._waiting or time.monotonic() >= deadline:
                return len(self._waiting)

    def purge(self) -> None:
        """Drops what awaits an answer: nobody will be told (the producer's poll is over)."""
        self.purged = True
        with self._lock:
            self._waiting = []

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return SimpleNamespace(topics=dict.fromkeys(self.cluster))

    def __len__(self) -> int:
        return len(self._waiting)


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def producer(client: FakeClient) -> Any:
    made = Producer("127.0.0.1:9092", SCHEMAS, client=client)
    yield made
    made.close(1)


def _sent_keys(client: FakeClient) -> list[bytes | None]:
    return [key for _topic, _value, key in client.produced]


# -- validation ----------------------------------------------------------------------------------


def _without(field: str) -> dict[str, Any]:
    record = order()
    del record[field]
    return record


MISSING = "nothing (the field is missing and has no default)"
NOT_A_FIELD = "no such field (not in shop.OrderSubmitted)"


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (_without("amount"), ("amount", "double", MISSING)),
        (order(amount="119.00"), ("amount", "double", "str '119.00'")),
        (order(items="2"), ("items", "int", "str '2'")),
        (order(items=True), ("items", "int", "bool True")),
        (order(occurred_at=1.5), ("occurred_at", "long or string", "float 1.5")),
        (order(customer_id=42), ("customer_id", "null or string", "int 42")),
        (order(e_mail="a@b.c"), ("e_mail", NOT_A_FIELD, "str 'a@b.c'")),
    ],
)
def test_an_invalid_record_is_refused_before_a_send_with_its_field_named(
    producer: Producer,
    client: FakeClient,
    record: dict[str, Any],
    problem: tuple[str, str, str],
) -> None:
    path, expected, got = problem
    with pytest.raises(InvalidRecord) as caught:
        producer.send(ORDERS, record)
    assert caught.value.schema_name == ORDER_SUBMITTED
    assert [(p.path, p.expected, p.got) for p in caught.value.problems] == [(path, expected, got)]
    assert f"{path}: expected {expected}, got {got}" in str(caught.value)
    assert client.produced == []


@pytest.mark.parametrize(("build", "version"), [(order, 1), (order_v2, 2)])
def test_a_valid_record_goes_out_as_the_schema_version_its_fields_fit(
    producer: Producer, client: FakeClient, build: Callable[..., dict[str, Any]], version: int
) -> None:
    record = build()
    producer.send(ORDERS, record).result(timeout=5)
    ((topic, value, _key),) = client.produced
    catalog, serde = SCHEMAS.load()
    assert topic == ORDERS
    written = catalog.versions(ORDER_SUBMITTED)[version - 1]
    assert value[1:5] == written.fingerprint_id.to_bytes(4, "big")
    # read back as the newest version (with v1's removed field), whichever wrote it
    assert serde.decode(value, ORDER_SUBMITTED) == as_decoded(record)


def test_a_bad_v1_record_is_told_against_v1_and_a_bad_v2_one_against_v2(
    producer: Producer,
) -> None:
    with pytest.raises(InvalidRecord, match=r"not a valid shop\.OrderSubmitted v1: items:"):
        producer.send(ORDERS, order(items="2"))
    with pytest.raises(InvalidRecord, match=r"not a valid shop\.OrderSubmitted v2: item_count:"):
        producer.send(ORDERS, order_v2(item_count="2"))
    with pytest.raises(InvalidRecord) as caught:  # v1 but for a coupon: v1 has no such field
        producer.send(ORDERS, order(coupon_code="SPRING"))
    assert caught.value.version == 1
    assert [p.path for p in caught.value.problems] == ["coupon_code"]


# -- topics --------------------------------------------------------------------------------------


def test_a_topic_without_a_schema_is_unknown(producer: Producer, client: FakeClient) -> None:
    with pytest.raises(UnknownTopic, match=r"shop\.orders\.v1: this producer has no schema"):
        producer.send("shop.orders.v1", order())
    assert client.produced == []


def test_a_topic_the_cluster_lacks_is_unknown(client: FakeClient) -> None:
    client.cluster = {OUTCOMES}
    with (
        Producer("127.0.0.1:9092", SCHEMAS, client=client) as producer,
        pytest.raises(UnknownTopic, match="has no such topic"),
    ):
        producer.send(ORDERS, order())
    assert client.produced == []


def test_a_topic_whose_schema_is_not_in_the_folder_stops_the_constructor(
    client: FakeClient,
) -> None:
    with pytest.raises(ConfigError, match="shop.Nothing"):
        Producer("127.0.0.1:9092", SCHEMAS, topics={ORDERS: "shop.Nothing"}, client=client)


# -- keys ----------------------------------------------------------------------------------------


def test_orders_are_keyed_as_the_shop_keys_them_and_labels_by_event_id(
    producer: Producer, client: FakeClient
) -> None:
    email = " Ada.Lovelace@Example.org "
    producer.send(ORDERS, order(customer_id="c-1"))
    producer.send(ORDERS, order(customer_id=None, email=email))
    producer.send(OUTCOMES, {"event_id": "e-9", "is_fraud": False, "occurred_at": 1})
    guest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16].encode()
    assert _sent_keys(client) == [b"c-1", guest, b"e-9"]


def test_a_callers_key_function_and_a_sends_own_key(client: FakeClient) -> None:
    asked: list[tuple[str, str]] = []

    def by_source(topic: str, record: Any) -> str:
        asked.append((topic, record["source"]))
        return str(record["source"])

    with Producer("127.0.0.1:9092", SCHEMAS, key=by_source, client=client) as producer:
        producer.send(ORDERS, order(customer_id="c-1"))
        producer.send(ORDERS, order(customer_id="c-1"), key=b"mine")
    assert asked == [(ORDERS, "web")]
    assert _sent_keys(client) == [b"web", b"mine"]


# -- backpressure --------------------------------------------------------------------------------


def test_send_many_waits_out_a_full_queue_and_sends_everything_in_order(
    client: FakeClient,
) -> None:
    client.full = 4  # librdkafka's queue is full four times over
    records = [order(customer_id=f"c-{i}") for i in range(10)]
    with Producer("127.0.0.1:9092", SCHEMAS, client=client) as producer:
        assert producer.send_many(ORDERS, records) == 10
    assert client.full == 0
    assert _sent_keys(client) == [f"c-{i}".encode() for i in range(10)]


def test_send_many_stops_at_the_first_invalid_record(
    producer: Producer, client: FakeClient
) -> None:
    records = [order(customer_id="a"), order(items="x"), order(customer_id="c")]
    with pytest.raises(InvalidRecord, match="items"):
        producer.send_many(ORDERS, records)
    assert _sent_keys(client) == [b"a"]


# -- deliveries ----------------------------------------------------------------------------------


def test_an_ack_settles_the_future_and_calls_back_first(
    producer: Producer, client: FakeClient
) -> None:
    client.hold = True  # until the delivery is in hand, so the callback can look at it
    called: list[tuple[Delivered | DeliveryFailed, bool]] = []
    sent: list[Delivery] = []
    delivery = producer.send(
        ORDERS, order(customer_id="c-1"), on_delivery=lambda o: called.append((o, sent[0].done()))
    )
    sent.append(delivery)
    client.hold = False  # the delivery thread, nobody else, serves the ack
    assert delivery.result(timeout=5) == Delivered(ORDERS, 3, 0, b"c-1")
    assert called == [(Delivered(ORDERS, 3, 0, b"c-1"), False)]


def test_a_refusal_by_the_broker_fails_the_future_and_the_callback_hears_it(
    producer: Producer, client: FakeClient
) -> None:
    client.refusal = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    called: list[Delivered | DeliveryFailed] = []
    record = order()
    delivery = producer.send(ORDERS, record, on_delivery=called.append)
    with pytest.raises(DeliveryFailed, match="MSG_SIZE_TOO_LARGE") as caught:
        delivery.result(timeout=5)
    assert caught.value.error is not None
    assert caught.value.error.code() == KafkaError.MSG_SIZE_TOO_LARGE
    assert caught.value.record is record
    assert called == [caught.value]


def test_a_refusal_by_the_producer_itself_is_a_failed_delivery_too(
    producer: Producer, client: FakeClient
) -> None:
    client.refuse_now = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    called: list[Delivered | DeliveryFailed] = []
    delivery = producer.send(ORDERS, order(), on_delivery=called.append)
    assert isinstance(delivery.exception(timeout=5), DeliveryFailed)
    assert called == [delivery.exception()]
    assert producer.flush(1) == []


def test_a_callback_that_raises_stops_no_delivery(producer: Producer, client: FakeClient) -> None:
    def broken(_outcome: object) -> None:
        raise RuntimeError("the caller's bug")

    first = producer.send(ORDERS, order(), on_delivery=broken)
    second = producer.send(ORDERS, order())
    assert first.result(timeout=5).offset == 0
    assert second.result(timeout=5).offset == 1


# -- flush, close --------------------------------------------------------------------------------


def test_flush_returns_what_is_still_unanswered(producer: Producer, client: FakeClient) -> None:
    client.hold = True
    held = producer.send(ORDERS, order())
    assert producer.flush(0.2) == [held]
    client.hold = False
    assert producer.flush(5) == []
    assert held.result(timeout=0).offset == 0


def test_close_abandons_what_is_unanswered_and_fails_it(client: FakeClient) -> None:
    client.hold = True
    producer = Producer("127.0.0.1:9092", SCHEMAS, client=client)
    held = producer.send(ORDERS, order())
    assert producer.close(0.2) == [held]
    assert client.purged
    with pytest.raises(DeliveryFailed, match="abandoned when the producer closed"):
        held.result(timeout=0)


def test_leaving_the_block_flushes(client: FakeClient) -> None:
    with Producer("127.0.0.1:9092", SCHEMAS, client=client) as producer:
        deliveries = [producer.send(ORDERS, order()) for _ in range(3)]
    assert [delivery.result(timeout=0).offset for delivery in deliveries] == [0, 1, 2]
    assert not client.purged


def test_leaving_the_block_with_records_unanswered_raises_not_flushed(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sender_module, "_CLOSE_MARGIN_S", 0.0)
    client.hold = True
    options = SendOptions(delivery_timeout_s=0.2)
    with (
        pytest.raises(NotFlushed) as caught,  # from the producer's exit
        Producer("127.0.0.1:9092", SCHEMAS, options=options, client=client) as producer,
    ):
        held = producer.send(ORDERS, order())
    assert caught.value.undelivered == (held,)
    assert "1 records not delivered" in str(caught.value)


def test_a_closed_producer_sends_nothing(client: FakeClient) -> None:
    producer = Producer("127.0.0.1:9092", SCHEMAS, client=client)
    assert producer.close(1) == []
    with pytest.raises(ProducerClosed, match="closed"):
        producer.send(ORDERS, order())
    with pytest.raises(ProducerClosed):
        producer.send_many(ORDERS, [order()])
    with pytest.raises(ProducerClosed):
        producer.flush(1)
    assert producer.close(1) == []
    assert client.produced == []


def test_a_producer_whose_client_failed_for_good_is_closed(client: FakeClient) -> None:
    client.hold = True
    producer = Producer("127.0.0.1:9092", SCHEMAS, client=client)
    held = producer.send(ORDERS, order())
    client.poll_raises = ConfigError("Kafka refused the login: bad password")
    with pytest.raises(DeliveryFailed, match="refused the login"):
        held.result(timeout=5)
    with pytest.raises(ProducerClosed, match="failed for good: Kafka refused the login"):
        producer.send(ORDERS, order())
    producer.close(0.1)


# -- options -------------------------------------------------------------------------------------


def test_the_client_is_idempotent_batches_and_creates_no_topic() -> None:
    properties = SendOptions(linger_ms=50, extra={"compression.type": "lz4"}).properties()
    assert properties["enable.idempotence"] is True
    assert properties["acks"] == "all"
    assert properties["allow.auto.create.topics"] is False
    assert properties["linger.ms"] == 50
    assert properties["batch.size"] == SendOptions().batch_bytes
    assert properties["compression.type"] == "lz4"


def test_idempotence_cannot_be_turned_off() -> None:
    with pytest.raises(ConfigError, match="acks, enable.idempotence"):
        SendOptions(extra={"enable.idempotence": False, "acks": "1"}).properties()


# -- topics from a pipeline ----------------------------------------------------------------------


def test_a_producer_sends_to_what_its_pipeline_reads() -> None:
    assert pipeline_topics(REPO / "pipelines/shop_orders.yaml") == SHOP_TOPICS
    assert pipeline_topics(REPO / "pipelines/phishing.yaml") == {
        "river.phishing.v1": "river.Phishing",
        "river.phishing_label.v1": "river.PhishingLabel",
    }
