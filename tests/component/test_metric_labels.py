"""No metric label takes its values from event data: every text field of the raw orders
carries a marker, the 87 poison classes ride along, and no label value of the scrape may
hold the marker, nor may a label outgrow a small set. A label fed from an event id, a name
or a free-text field fails this test."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.memory import InMemorySeenStore, InMemoryUnitStatsStore
from streamproc.adapters.metrics import StageMetrics
from streamproc.config.pipeline import load_pipeline
from streamproc.records import Envelope
from streamproc.stages.clean import CleanStage
from tests.builders import order
from tests.conftest import REPO
from tests.poison import POISON, RAW_TOPIC, Wire

MARK = "zq"  # in no declared name, topic, reason or flag
# raw fields that hold text a producer chose; each gets a marked value in turn
_TEXT_FIELDS = (
    "event_id",
    "source",
    "customer_id",
    "customer_name",
    "email",
    "country",
    "currency",
    "tz",
    "occurred_at",
    "payment_method",
)
# the most distinct values one label may take here: topics, reasons, flags, fields...
_LABEL_VALUES_AT_MOST = 40


def _marked_orders() -> list[dict[str, Any]]:
    orders = []
    for i in range(200):
        field = _TEXT_FIELDS[i % len(_TEXT_FIELDS)]
        source = ("web", "app", "pos")[i % 3]
        fields = {"source": source, "customer_id": f"c{i}", field: f"{MARK}-{i}"}
        orders.append(order(**fields))
    return orders


@pytest.fixture
async def scraped(serde: AvroSerde, catalog: SchemaCatalog) -> list[tuple[str, dict[str, str]]]:
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    stage = CleanStage(spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"key")
    wire = Wire(serde, catalog)
    values: list[bytes | None] = [
        serde.encode(RAW_TOPIC, "shop.OrderSubmitted", o) for o in _marked_orders()
    ]
    values += [case.build(wire) for case in POISON]
    batch = [Envelope(RAW_TOPIC, 0, i, b"k", v, (), 1000 + i) for i, v in enumerate(values)]
    metrics = StageMetrics()
    result = await stage.process(batch)
    metrics.observe_batch(RAW_TOPIC, batch, result, 0.01)
    assert result.clean and result.rejections and result.field_status  # the test sees them
    text = metrics.exposition().decode()
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_no_label_value_comes_from_event_data(scraped: list[tuple[str, dict[str, str]]]) -> None:
    leaked = {
        (name, label, value)
        for name, labels in scraped
        for label, value in labels.items()
        if MARK in value.lower()
    }
    assert not leaked, f"label values taken from the events: {sorted(leaked)[:5]}"


def test_every_label_stays_small(scraped: list[tuple[str, dict[str, str]]]) -> None:
    values: dict[tuple[str, str], set[str]] = {}
    for name, labels in scraped:
        for label, value in labels.items():
            if label != "le":  # a histogram's buckets: fixed in the code
                values.setdefault((name, label), set()).add(value)
    assert values, "nothing was scraped"
    large = {key: len(v) for key, v in values.items() if len(v) > _LABEL_VALUES_AT_MOST}
    assert not large, f"labels with many values: {large}"
