"""Cost per record: our serde and the in-memory clean stage against plain fastavro.

Run with `make bench`. Figures are medians of several rounds; ratios against the fastavro
baseline measured in the same run are what to compare across machines.
"""

from __future__ import annotations

import asyncio
import io
import json
import statistics
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import schemaless_reader, schemaless_writer

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.memory import InMemorySeenStore, InMemoryUnitStatsStore
from streamproc.config.pipeline import load_pipeline
from streamproc.records import Envelope
from streamproc.scenario.shop import GeneratorConfig, generate
from streamproc.stages.clean import CleanStage

REPO = Path(__file__).resolve().parents[1]
TOPIC = "shop.order.v1"
SCHEMA = "shop.OrderSubmitted"
RECORDS = 5_000
ROUNDS = 7


def _orders(count: int) -> list[dict[str, object]]:
    return [
        {
            "event_id": str(uuid.UUID(int=i)),
            "source": ("web", "app", "pos")[i % 3],
            "customer_id": f"c{i % 997}" if i % 4 else None,
            "customer_name": "Ada Lovelace",
            "email": "ada@example.org",
            "country": "DE",
            "amount": 10.0 + i % 250,
            "amount_includes_tax": True,
            "tax_rate": None,
            "currency": "EUR",
            "items": 1 + i % 5,
            "occurred_at": 1_774_746_000_000 + i,
            "tz": None,
            "session_duration": 30.5,
            "app_version": None,
            "payment_method": "card",
        }
        for i in range(count)
    ]


def _per_record_us(work: Callable[[], object], records: int) -> float:
    timings = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) / records * 1e6


def _clean_stage_us(serde: AvroSerde) -> float:
    """The whole clean step (decode, normalize, unit check, dedupe, encode) on scenario
    traffic in batches of 500, with the in-memory store: the CPU cost without any I/O."""
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    events = generate(GeneratorConfig(events=RECORDS, seed=1)).events
    envelopes = [
        Envelope(TOPIC, 0, i, b"k", serde.encode(TOPIC, SCHEMA, event))
        for i, event in enumerate(events)
    ]
    batches = [envelopes[i : i + 500] for i in range(0, len(envelopes), 500)]

    async def all_batches() -> None:
        stage = CleanStage(spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"bench-key")
        for batch in batches:
            await stage.process(batch)

    def run() -> None:
        asyncio.run(all_batches())

    return _per_record_us(run, RECORDS)


def main() -> None:
    catalog = SchemaCatalog.load(REPO / "schemas")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    parsed = catalog.latest(SCHEMA).parsed
    orders = _orders(RECORDS)
    encoded = [serde.encode(TOPIC, SCHEMA, order) for order in orders]
    header = struct.pack(">bI", 0, catalog.latest(SCHEMA).fingerprint_id)

    def fastavro_encode() -> None:
        for order in orders:
            out = io.BytesIO()
            out.write(header)
            schemaless_writer(out, parsed, order)

    def fastavro_decode() -> None:
        for data in encoded:
            body = io.BytesIO(data)
            body.seek(5)
            schemaless_reader(body, parsed, None)

    registry = SchemaRegistryClient.new_client({"url": f"mock://{uuid.uuid4()}"})
    context = SerializationContext(TOPIC, MessageField.VALUE)
    serializer = AvroSerializer(registry, json.dumps(catalog.latest(SCHEMA).definition))
    deserializer = AvroDeserializer(registry)
    theirs = [serializer(order, context) for order in orders]
    clean_us = _clean_stage_us(serde)

    fastavro_encode_us = _per_record_us(fastavro_encode, RECORDS)
    fastavro_decode_us = _per_record_us(fastavro_decode, RECORDS)
    both_us = fastavro_encode_us + fastavro_decode_us
    rows = [
        ("fastavro encode (baseline)", fastavro_encode_us, fastavro_encode_us),
        (
            "streamproc encode",
            _per_record_us(lambda: [serde.encode(TOPIC, SCHEMA, o) for o in orders], RECORDS),
            fastavro_encode_us,
        ),
        (
            "confluent AvroSerializer",
            _per_record_us(lambda: [serializer(o, context) for o in orders], RECORDS),
            fastavro_encode_us,
        ),
        ("fastavro decode (baseline)", fastavro_decode_us, fastavro_decode_us),
        (
            "streamproc decode",
            _per_record_us(lambda: [serde.decode(d, SCHEMA) for d in encoded], RECORDS),
            fastavro_decode_us,
        ),
        (
            "confluent AvroDeserializer",
            _per_record_us(lambda: [deserializer(d, context) for d in theirs], RECORDS),
            fastavro_decode_us,
        ),
        ("clean stage, in memory", clean_us, both_us),
    ]
    print(f"{RECORDS} shop.OrderSubmitted records, median of {ROUNDS} rounds")
    print(f"{'step':<32} {'µs/record':>10} {'records/s':>12} {'× fastavro':>11}")
    for name, micros, baseline in rows:
        print(f"{name:<32} {micros:>10.2f} {1e6 / micros:>12,.0f} {micros / baseline:>11.2f}")


if __name__ == "__main__":
    main()
