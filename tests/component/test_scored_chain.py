"""The scored chain the worker, run-file and the hot-path benchmark share: clean orders in,
features served, every order predicted once, its x logged once, a bad record costing itself."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.memory import (
    InMemoryFeatureStore,
    InMemorySeenStore,
    InMemoryServedLog,
    InMemoryUnitStatsStore,
)
from streamproc.adapters.metrics import StageMetrics
from streamproc.config.pipeline import load_pipeline
from streamproc.core.features.stage import FeatureStage
from streamproc.core.training import ServedX
from streamproc.records import Envelope
from streamproc.stages.clean import CleanStage
from streamproc.stages.feature_step import FeatureStep
from streamproc.stages.predict import PredictStep
from streamproc.stages.scored import ScoredChain
from tests.builders import ORDER_SUBMITTED, order
from tests.conftest import REPO

SPEC = load_pipeline(REPO / "pipelines/shop_orders.yaml")


async def _clean(serde: AvroSerde, orders: list[dict[str, object]]) -> list[Envelope]:
    stage = CleanStage(SPEC, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"key")
    raw = [
        Envelope(SPEC.source.topic, 0, i, b"k", serde.encode(SPEC.source.topic, ORDER_SUBMITTED, o))
        for i, o in enumerate(orders)
    ]
    cleaned = (await stage.process(raw)).clean
    return [
        Envelope(out.topic, 0, i, out.key, out.value, out.headers, 1_000)
        for i, out in enumerate(cleaned)
    ]


def _chain(serde: AvroSerde, log: InMemoryServedLog) -> ScoredChain:
    assert SPEC.models is not None
    features = FeatureStep.of_clean_orders(
        SPEC, serde, FeatureStage(SPEC.features, InMemoryFeatureStore())
    )
    return ScoredChain(features, PredictStep(SPEC.models, serde), log, clock_ms=lambda: 5_000)


async def test_each_clean_order_is_predicted_once_and_its_x_logged(serde: AvroSerde) -> None:
    orders = [
        order(
            event_id=f"e{i}",
            customer_id=f"c{i % 3}",
            items=i + 1,
            occurred_at=1_774_746_000_000 + i,
        )
        for i in range(6)
    ]
    batch = await _clean(serde, orders)
    batch.append(Envelope(SPEC.sink.topic, 0, 6, b"k", b"\x00garbage", (), 1_000))
    log = InMemoryServedLog()
    result = await _chain(serde, log).process(batch)

    predicted = [serde.decode(p.value) for p in result.predictions]
    assert [p["event_id"] for p in predicted] == [f"e{i}" for i in range(6)]
    assert {p["predicted_at"] for p in predicted} == {5_000}
    assert [r.source.offset for r in result.rejections] == [6]  # the garbage, alone
    assert set(log.x) == {f"e{i}" for i in range(6)}
    assert ServedX.load(log.x["e0"]).scores  # every model's score, for the trainer
    assert set(result.seconds) == {"features", "predict", "served_x"}
    assert result.outputs() == result.predictions  # nothing late to divert


async def test_a_replayed_batch_keeps_the_first_served_x(serde: AvroSerde) -> None:
    batch = await _clean(serde, [order(event_id="e1", customer_id="c1")])
    log = InMemoryServedLog()
    chain = _chain(serde, log)
    await chain.process(batch)
    first = log.x["e1"]
    await chain.process(batch)
    assert log.x["e1"] == first


def test_models_without_a_served_log_are_refused(serde: AvroSerde) -> None:
    assert SPEC.models is not None
    features = FeatureStep.of_clean_orders(
        SPEC, serde, FeatureStage(SPEC.features, InMemoryFeatureStore())
    )
    with pytest.raises(ValueError, match="served-x log"):
        ScoredChain(features, PredictStep(SPEC.models, serde))


async def test_the_metrics_time_each_prediction_from_its_event_and_its_kafka_record(
    serde: AvroSerde,
) -> None:
    """Orders an hour apart per customer; the raw records' Kafka time is 1 s before now."""
    hour_ms = 3_600_000
    start = int(time.time() * 1000) - 3 * hour_ms
    orders = [
        order(event_id=f"e{i}", customer_id=f"c{i % 2}", occurred_at=start + i * hour_ms)
        for i in range(4)
    ]
    kafka_ms = int(time.time() * 1000) - 1_000
    batch = [replace(e, timestamp_ms=kafka_ms) for e in await _clean(serde, orders)]
    result = await _chain(serde, InMemoryServedLog()).process(batch)
    metrics = StageMetrics()
    metrics.observe_features(SPEC.sink.topic, batch, result, 0.01)

    def value(name: str, **labels: str) -> float:
        found = metrics.registry.get_sample_value(name, labels)
        assert found is not None, name
        return found

    since_kafka = {"since": "kafka_timestamp"}
    assert value("streamproc_prediction_delay_seconds_count", **since_kafka) == 4
    assert 4 * 1.0 <= value("streamproc_prediction_delay_seconds_sum", **since_kafka) < 4 * 60
    since_event = {"since": "event_time"}
    # 3 h, 2 h, 1 h and 0 h old (plus the test's own seconds)
    assert (
        6 * 3600 <= value("streamproc_prediction_delay_seconds_sum", **since_event) < 6 * 3600 + 60
    )
    # e2 and e3 follow their customer's order of 2 h before; e0 and e1 are first orders
    assert value("streamproc_feature_age_seconds_count") == 2
    assert value("streamproc_feature_age_seconds_sum") == 2 * 2 * 3600
