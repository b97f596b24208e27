"""The predict step: every order scored by the champion and served, the served x kept for the
label join, a bad record costing only itself."""

from __future__ import annotations

import math
from dataclasses import replace

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.config.pipeline import load_pipeline
from streamproc.core.features.state import FeatureValue
from streamproc.records import Envelope
from streamproc.stages.feature_step import ServedOrder
from streamproc.stages.predict import PredictStep, ServingModels
from tests.conftest import REPO

PIPELINE = REPO / "pipelines/shop_orders.yaml"


def _order(event_id: str, partition: int, at: int, **fields: object) -> ServedOrder:
    record = {
        "event_id": event_id,
        "entity_key": "C1",
        "occurred_at": at,
        "amount_gross_eur": 42.0,
        "source": "web",
        "payment_method": "card",
        "customer_id": "C1",
        **fields,
    }
    features = {"amount_count_1h": FeatureValue(3, "fresh", 60_000)}
    envelope = Envelope("shop.order.clean.v1", partition, 0, b"C1", b"", (), at + 5)
    return ServedOrder(envelope, record, features)


def test_every_order_is_scored_and_its_served_x_kept(serde: AvroSerde) -> None:
    declared = load_pipeline(PIPELINE).models
    assert declared is not None
    step = PredictStep(declared, serde)
    step.serving = ServingModels(7, "hat", step.serving.models)  # an operator promoted hat

    batch = [_order("e1", 0, 1_000), _order("e2", 1, 3_000), _order("e3", 0, 2_000)]
    batch.append(_order("bad", 1, 4_000, occurred_at="not a time"))
    result = step.process(batch, now_ms=10_000)

    assert [(r.source.partition, r.reason) for r in result.rejections] == [(1, "internal_error")]
    records = [serde.decode(p.value, "shop.OrderPrediction") for p in result.predictions]
    assert [r["event_id"] for r in records] == ["e1", "e2", "e3"]
    assert {(r["model_name"], r["model_version"]) for r in records} == {("hat", 7)}
    served = dict(result.served)
    # only the champion is scored on the serving path (the trainer scores the challengers)
    assert set(served["e1"].scores) == {"hat"}
    assert records[0]["fraud_probability"] == served["e1"].scores["hat"]
    assert served["e1"].features_as_of == 1_000 - 60_000
    assert result.newest_ms == {0: 2_000, 1: 3_000}  # per partition, the bad record aside


def test_a_non_finite_or_absurd_input_is_never_scored_nor_served(serde: AvroSerde) -> None:
    declared = load_pipeline(PIPELINE).models
    assert declared is not None
    step = PredictStep(declared, serde)
    batch = [
        _order("inf", 0, 1_000, amount_gross_eur=math.inf),
        _order("huge", 0, 1_500, amount_gross_eur=1e308),
        _order("ok", 0, 2_000),
    ]
    batch[1] = replace(batch[1], features={"amount_count_1h": FeatureValue(1e300, "fresh", 0)})
    result = step.process(batch, now_ms=10_000)
    assert [r.reason for r in result.rejections] == ["invalid_input", "invalid_input"]
    assert [event_id for event_id, _ in result.served] == ["ok"]
    assert all(math.isfinite(v) for v in dict(result.served)["ok"].x.values())
