"""Producer SDK: which schema each topic carries, and how a record is keyed, as the service
expects them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from streamproc.config.tabular import load_declaration
from streamproc.scenario.shop import producer_key

ORDERS_SCHEMA = "shop.OrderSubmitted"
OUTCOMES_SCHEMA = "shop.OrderOutcome"
# What the reference pipeline (pipelines/shop_orders.yaml) reads: topic -> schema.
SHOP_TOPICS: Mapping[str, str] = {
    "shop.order.v1": ORDERS_SCHEMA,
    "shop.order_outcome.v1": OUTCOMES_SCHEMA,
}
PREDICTIONS_TOPIC = "shop.order_prediction.v1"
PREDICTION_SCHEMA = "shop.OrderPrediction"

# A caller's key function: (topic, record) -> the Kafka key (None: librdkafka spreads records).
KeyFunction = Callable[[str, Mapping[str, Any]], bytes | str | None]


def pipeline_topics(path: Path) -> dict[str, str]:
    """The topics a pipeline declaration reads (its source, and its labels when it has models),
    each with its schema: what a producer for that pipeline sends to."""
    spec = load_declaration(path)
    topics = {spec.source.topic: spec.source.schema_name}
    if spec.models is not None:
        topics[spec.models.labels.topic] = spec.models.labels.schema_name
    return topics


def shop_key(schema_name: str, record: Mapping[str, Any]) -> bytes | None:
    """The key the shop's own producers give a record of this schema: an order its customer's
    (so a customer's orders and retries keep their order in one partition), a label its
    event_id (as the demo sends them); None for other schemas."""
    if schema_name == ORDERS_SCHEMA:
        return producer_key(record)
    if schema_name == OUTCOMES_SCHEMA:
        return str(record["event_id"]).encode()
    return None
