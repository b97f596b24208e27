"""The prediction record: it fits shop.OrderPrediction and says how its features stood."""

from __future__ import annotations

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.core.features.state import FeatureValue
from streamproc.stages.feature_step import CLEAN_ORDER
from streamproc.stages.predict import prediction


def test_a_prediction_record_fits_its_schema_and_says_how_fresh_its_features_were(
    serde: AvroSerde,
) -> None:
    order = {"event_id": "e-1", "entity_key": "C1", "occurred_at": 1_774_746_000_000}
    fresh = {"amount_count_1h": FeatureValue(2, "fresh", 60_000)}
    stale = {**fresh, "usual_country": FeatureValue("DE", "stale", 9 * 86_400_000)}
    unknown = {"amount_mean_1h": FeatureValue(None, "missing", None)}
    records = [
        prediction(
            CLEAN_ORDER, order, served, 0.25, ("logreg", 3), 1_774_746_000_500, 1_774_746_000_512
        )
        for served in (fresh, stale, unknown)
    ]
    assert [r["feature_status"] for r in records] == ["fresh", "stale", "missing"]
    assert records[0]["feature_freshness_ms"] == 60_000
    assert records[0]["latency_ms"] == 12
    for record in records:
        encoded = serde.encode("shop.order_prediction.v1", "shop.OrderPrediction", record)
        assert serde.decode(encoded, "shop.OrderPrediction") == record
