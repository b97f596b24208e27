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
from tests.builders import ORDER_SUBMITTED, as_decoded, order, order_v2, orders

TOPIC = "shop.order.v1"
CONTEXT = SerializationContext(TOPIC, MessageField.VALUE)


@pytest.fixture(scope="module")
def client() -> Any:
    return SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"})


@pytest.fixture(scope="module")
def ours(client: Any, catalog: SchemaCatalog) -> AvroSerde:
    return AvroSerde(catalog, ConfluentRegistry(client))


def _serializer(client: Any, catalog: SchemaCatalog, version: int) -> AvroSerializer:
    schema = json.dumps(catalog.versions(ORDER_SUBMITTED)[version - 1].definition)
    # mypy types a call of confluent-kafka's serde classes as Any: the annotation keeps the type
    serializer: AvroSerializer = AvroSerializer(
        client, schema, conf={"auto.register.schemas": True}
    )
    return serializer


@pytest.fixture(scope="module")
def their_serializer(client: Any, catalog: SchemaCatalog) -> AvroSerializer:
    """A producer outside this repo, written against shop.OrderSubmitted v1."""
    return _serializer(client, catalog, 1)


@pytest.fixture(scope="module")
def their_v2_serializer(client: Any, catalog: SchemaCatalog) -> AvroSerializer:
    """A producer outside this repo, already on shop.OrderSubmitted v2."""
    return _serializer(client, catalog, 2)


@pytest.fixture(scope="module")
def their_deserializer(client: Any) -> AvroDeserializer:
    deserializer: AvroDeserializer = AvroDeserializer(client)
    return deserializer


def test_we_decode_what_their_serializer_writes(
    ours: AvroSerde, their_serializer: AvroSerializer
) -> None:
    record = order(source="pos", occurred_at="2026-03-29 02:30:00", tz="Europe/Berlin")
    assert ours.decode(their_serializer(record, CONTEXT), ORDER_SUBMITTED) == as_decoded(record)


def test_their_v1_and_v2_writers_decode_alike(
    ours: AvroSerde, their_serializer: AvroSerializer, their_v2_serializer: AvroSerializer
) -> None:
    v1, v2 = order(amount_includes_tax=None), order_v2()  # v1 says no more than v2 can
    v2["event_id"] = v1["event_id"]
    from_v1 = their_serializer(v1, CONTEXT)
    from_v2 = their_v2_serializer(v2, CONTEXT)
    assert from_v1 is not None and from_v2 is not None
    assert from_v1[1:5] != from_v2[1:5]  # two schema ids in one topic
    decoded = as_decoded(v2)
    assert ours.decode(from_v1, ORDER_SUBMITTED) == ours.decode(from_v2, ORDER_SUBMITTED) == decoded
    assert ours.encode(TOPIC, ORDER_SUBMITTED, v2) == from_v2


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
    assert ours.decode(their_serializer(record, CONTEXT)) == as_decoded(record)
    assert their_deserializer(ours.encode(TOPIC, ORDER_SUBMITTED, record), CONTEXT) == record
