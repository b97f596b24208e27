"""One suite for every SchemaRegistry: the embedded one and a Confluent-compatible one."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from streamproc.adapters.avro.registry import ConfluentRegistry, EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde, SchemaRegistry
from tests.builders import ORDER_SUBMITTED, as_decoded, order, order_v2

RegistryFactory = Callable[[SchemaCatalog], SchemaRegistry]

FACTORIES: dict[str, RegistryFactory] = {
    "embedded": EmbeddedRegistry,
    # confluent-kafka's in-memory registry speaks the same client API as a real server.
    "confluent": lambda _catalog: ConfluentRegistry.from_url(f"mock://{uuid.uuid4()}"),
}


@pytest.fixture(params=sorted(FACTORIES))
def registry(request: pytest.FixtureRequest, catalog: SchemaCatalog) -> SchemaRegistry:
    return FACTORIES[request.param](catalog)


def test_an_id_resolves_to_the_same_schema(
    registry: SchemaRegistry, catalog: SchemaCatalog
) -> None:
    for schema in catalog:
        schema_id = registry.id_for("some.topic", schema)
        writer = registry.writer_schema(schema_id)
        assert writer is not None
        assert (writer.schema_id, writer.name, writer.canonical) == (
            schema_id,
            schema.name,
            schema.canonical,
        )


def test_the_same_schema_keeps_its_id(registry: SchemaRegistry, catalog: SchemaCatalog) -> None:
    schema = catalog.latest(ORDER_SUBMITTED)
    assert registry.id_for("shop.order.v1", schema) == registry.id_for("shop.order.v1", schema)


def test_an_unknown_id_is_none(registry: SchemaRegistry) -> None:
    assert registry.writer_schema(2_000_000_001) is None


def test_serde_round_trips_through_the_registry(
    registry: SchemaRegistry, catalog: SchemaCatalog
) -> None:
    serde = AvroSerde(catalog, registry)
    record = order()
    assert serde.decode(serde.encode("shop.order.v1", ORDER_SUBMITTED, record)) == as_decoded(
        record
    )
    v2 = order_v2()
    assert serde.decode(serde.encode("shop.order.v1", ORDER_SUBMITTED, v2)) == as_decoded(v2)


def test_embedded_ids_are_a_stable_contract(catalog: SchemaCatalog) -> None:
    # Producers on other machines compute these same ids from the schema text: if this test
    # fails, the derivation changed and every record already in Kafka becomes unreadable.
    ids = {(schema.name, schema.version): schema.fingerprint_id for schema in catalog}
    assert {name: i for (name, version), i in ids.items() if version == 1} == {
        "river.Phishing": 1907620851,  # the tabular pipeline over River's Phishing dataset
        "river.PhishingLabel": 580525567,
        "shop.OrderClean": 102863873,
        "shop.OrderDuplicate": 1166290954,
        "shop.OrderOutcome": 1460603677,
        "shop.OrderPrediction": 134866159,
        "shop.OrderSubmitted": 1080878407,
        "streamproc.ModelEvent": 1085373751,  # new in this release
        "streamproc.Prediction": 905505493,  # a tabular pipeline's predictions
    }
    assert {key: i for key, i in ids.items() if key[1] > 1} == {
        ("shop.OrderSubmitted", 2): 81093902,  # item_count, coupon_code; no amount_includes_tax
    }
