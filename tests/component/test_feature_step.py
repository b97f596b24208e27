"""The feature step over batches of a tabular record type: a bad record costs itself only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streamproc.adapters.memory import InMemoryFeatureStore
from streamproc.config.pipeline import Features, FeatureView
from streamproc.core.features.stage import FeatureStage
from streamproc.records import Envelope
from streamproc.stages.feature_step import FeatureStep, RecordShape

SHAPE = RecordShape("click_id", "at", "user", "probability")


class JsonCodec:
    """Records as JSON: a nullable time is as easy to write as in a nullable Avro schema."""

    def decode(self, data: bytes | None, expected_name: str | None = None) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(data or b"{}")
        return decoded

    def encode(self, topic: str, schema_name: str, record: Mapping[str, Any]) -> bytes:
        return json.dumps(record).encode()


def _step() -> FeatureStep:
    view = FeatureView.model_validate(
        {"name": "clicks", "ttl": "1d", "windows": {"1h": "10m"},
         "aggregates": {"price": {"field": "price", "ops": ["count", "sum"]}}}
    )  # fmt: skip
    features = Features(views=[view])
    return FeatureStep(JsonCodec(), FeatureStage(features, InMemoryFeatureStore()), "x", SHAPE)


def _batch(records: list[dict[str, Any]]) -> list[Envelope]:
    return [
        Envelope("clicks", 0, i, b"k", json.dumps(r).encode(), (), None)
        for i, r in enumerate(records)
    ]


async def test_a_record_with_a_null_time_goes_to_the_dlq_and_the_batch_goes_on() -> None:
    records: list[dict[str, Any]] = [
        {"click_id": "a", "at": 1_000, "user": "u1", "price": 2.0},
        {"click_id": "b", "at": None, "user": "u1", "price": 3.0},
        {"click_id": "c", "user": "u2", "price": 1.0},  # no time at all
        {"click_id": "d", "at": 2_000, "user": "u1", "price": 5.0},
    ]
    result = await _step().process(_batch(records), wall_ms=10_000)
    assert [(r.source.offset, r.reason) for r in result.rejections] == [
        (1, "invalid_time"),
        (2, "invalid_time"),
    ]
    assert [o.record["click_id"] for o in result.orders] == ["a", "d"]
    assert result.orders[1].features["price_count_1h"].value == 1


async def test_a_record_without_an_id_or_with_a_broken_value_costs_itself_only() -> None:
    envelopes = _batch([{"click_id": None, "at": 1, "user": "u"}, {"click_id": "e", "at": 5}])
    envelopes.insert(1, Envelope("clicks", 0, 9, b"k", b"{not json", (), None))
    result = await _step().process(envelopes, wall_ms=10_000)
    assert [r.reason for r in result.rejections] == ["missing_required", "internal_error"]
    assert [o.record["click_id"] for o in result.orders] == ["e"]
