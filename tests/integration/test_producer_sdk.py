"""The producer SDK on the real broker: what it sends decodes with the service's serde to the
values sent, under the service's schema id and the shop's key; the broker has it as an
idempotent producer; a record the topic refuses is a DeliveryFailed, and a topic the cluster
lacks is UnknownTopic."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.producer import (
    Delivered,
    DeliveryFailed,
    Producer,
    Schemas,
    SendOptions,
    UnknownTopic,
)
from streamproc.scenario.shop import producer_key
from tests.builders import ORDER_SUBMITTED, as_decoded, order
from tests.conftest import REPO
from tests.integration.conftest import OUTCOMES, RAW_ORDERS, Stack
from tests.integration.test_batch_sender import scratch_topic

SCHEMAS = Schemas(REPO / "schemas")


def _read_at(stack: Stack, delivered: list[Delivered]) -> list[Any]:
    """The message at each acked position, in turn."""
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "it-sdk-reader"})
    found = []
    try:
        for where in delivered:
            consumer.assign([TopicPartition(where.topic, where.partition, where.offset)])
            (message,) = consumer.consume(1, timeout=15)
            assert message.error() is None, message.error()
            found.append(message)
    finally:
        consumer.close()
    return found


def test_sent_orders_decode_with_the_services_serde_under_its_schema_id(
    stack: Stack, serde: AvroSerde, catalog: SchemaCatalog
) -> None:
    run = uuid.uuid4().hex
    orders = [order(event_id=f"{run}-{i}", customer_id=f"{run}-c{i}") for i in range(3)]
    orders.append(order(event_id=f"{run}-guest", customer_id=None))  # keyed by its e-mail
    with Producer(stack.kafka, SCHEMAS) as producer:
        deliveries = [producer.send(RAW_ORDERS, record) for record in orders]
        delivered = [delivery.result(timeout=30) for delivery in deliveries]
    schema_id = catalog.versions(ORDER_SUBMITTED)[0].fingerprint_id.to_bytes(4, "big")  # v1's
    for record, message in zip(orders, _read_at(stack, delivered), strict=True):
        assert serde.decode(message.value(), ORDER_SUBMITTED) == as_decoded(record)
        assert message.value()[:5] == b"\x00" + schema_id
        assert message.key() == producer_key(record)


def test_the_broker_has_it_as_an_idempotent_producer(stack: Stack) -> None:
    stats: list[dict[str, Any]] = []
    options = SendOptions(
        extra={
            "statistics.interval.ms": 100,
            "stats_cb": lambda text: stats.append(json.loads(text)),
        }
    )
    label = {"event_id": uuid.uuid4().hex, "is_fraud": False, "occurred_at": 1}
    with Producer(stack.kafka, SCHEMAS, options=options) as producer:
        deadline = time.monotonic() + 20
        # statistics are served while records await acks: send until they have come
        while not stats and time.monotonic() < deadline:
            producer.send(OUTCOMES, label).result(timeout=30)
            time.sleep(0.2)
    assert stats, "librdkafka sent no statistics"
    eos = stats[-1]["eos"]  # only an idempotent producer has this section
    assert eos["idemp_state"] == "Assigned"
    assert eos["producer_id"] >= 0


def test_a_record_the_topic_refuses_is_a_delivery_failed(stack: Stack) -> None:
    with scratch_topic(stack, f"it-sdk-{uuid.uuid4().hex}", {"max.message.bytes": "2000"}) as topic:
        topics = {topic: ORDER_SUBMITTED}
        with Producer(stack.kafka, SCHEMAS, topics=topics) as producer:
            too_large = order(customer_name="x" * 5_000)  # under the producer's limit
            with pytest.raises(DeliveryFailed) as caught:
                producer.send(topic, too_large).result(timeout=60)
            assert caught.value.error is not None
            assert caught.value.error.code() == KafkaError.MSG_SIZE_TOO_LARGE
            assert caught.value.record is too_large
            assert producer.send(topic, order()).result(timeout=30).topic == topic


def test_a_topic_the_cluster_lacks_is_unknown_and_not_created(stack: Stack) -> None:
    missing = f"it-sdk-missing-{uuid.uuid4().hex}"
    with (
        Producer(stack.kafka, SCHEMAS, topics={missing: ORDER_SUBMITTED}) as producer,
        pytest.raises(UnknownTopic, match="has no such topic"),
    ):
        producer.send(missing, order())
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "it-sdk-reader"})
    try:
        assert missing not in consumer.list_topics(timeout=10).topics
    finally:
        consumer.close()
