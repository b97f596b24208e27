"""Our wire format and confluent-kafka's AvroSerializer/AvroDeserializer read each other."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import given, settings

from streamproc.adapters.avro.registry import ConfluentRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from tests.builders import ORDER_SUBMITTED, order, orders

TOPIC = "shop.order.v1"
CONTEXT = SerializationContext(TOPIC, MessageField.VALUE)


@pytest.fixture(scope="module")
def client() -> Any:
    return SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"})


@pytest.fixture(scope="module")
def ours(client: Any, catalog: SchemaCatalog) -> AvroSerde:
    return AvroSerde(catalog, ConfluentRegistry(client))


@pytest.fixture(scope="module")
def their_serializer(client: Any, catalog: SchemaCatalog) -> AvroSerializer:
    schema = json.dumps(catalog.latest(ORDER_SUBMITTED).definition)
    # mypy types a call of confluent-kafka's serde classes as Any: the annotation keeps the type
    serializer: AvroSerializer = AvroSerializer(
        client, schema, conf={"auto.register.schemas": True}
    )
    return serializer


@pytest.fixture(scope="module")
def their_deserializer(client: Any) -> AvroDeserializer:
    deserializer: AvroDeserializer = AvroDeserializer(client)
    return deserializer


def test_we_decode_what_their_serializer_writes(
    ours: AvroSerde, their_serializer: AvroSerializer
) -> None:
    record = order(source="pos", occurred_at="2026-03-29 02:30:00", tz="Europe/Berlin")
    assert ours.decode(their_serializer(record, CONTEXT), ORDER_SUBMITTED) == record


def test_their_deserializer_reads_what_we_write(
    ours: AvroSerde, their_deserializer: AvroDeserializer
) -> None:
    record = order(source="app", occurred_at=1_774_746_000, app_version=5)
    assert their_deserializer(ours.encode(TOPIC, ORDER_SUBMITTED, record), CONTEXT) == record


def test_both_write_the_same_bytes(ours: AvroSerde, their_serializer: AvroSerializer) -> None:
    record = order()
    assert ours.encode(TOPIC, ORDER_SUBMITTED, record) == their_serializer(record, CONTEXT)


@settings(max_examples=100, deadline=None)
@given(record=orders)
def test_any_order_crosses_both_ways(
    ours: AvroSerde,
    their_serializer: AvroSerializer,
    their_deserializer: AvroDeserializer,
    record: dict[str, Any],
) -> None:
    assert ours.decode(their_serializer(record, CONTEXT)) == record
    assert their_deserializer(ours.encode(TOPIC, ORDER_SUBMITTED, record), CONTEXT) == record
