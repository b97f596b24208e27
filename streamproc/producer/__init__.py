"""The producer SDK for Python services: send records to the service's input topics as it
expects them (validated against the topic's schema, Confluent wire format, the service's schema
ids, idempotent, keyed as the shop keys them), and read the predictions it writes back.

    with Producer.from_settings() as producer:
        producer.send("shop.order.v1", order, on_delivery=print)

`sender` (Producer, SendOptions), `delivery` (Delivery, Delivered), `reader`
(PredictionReader), `schemas` (Schemas: the folder and registry), `topics` (each topic's schema,
the shop's keys), `errors`, and `environment` (the service's STREAMPROC_* settings).
"""

from streamproc.producer.delivery import Delivered, Delivery, OnDelivery
from streamproc.producer.errors import (
    DeliveryFailed,
    InvalidRecord,
    NotFlushed,
    ProducerClosed,
    ProducerError,
    UnknownTopic,
)
from streamproc.producer.reader import PredictionReader, Start
from streamproc.producer.schemas import Schemas
from streamproc.producer.sender import Producer, SendOptions
from streamproc.producer.topics import PREDICTIONS_TOPIC, SHOP_TOPICS, KeyFunction

__all__ = [
    "PREDICTIONS_TOPIC",
    "SHOP_TOPICS",
    "Delivered",
    "Delivery",
    "DeliveryFailed",
    "InvalidRecord",
    "KeyFunction",
    "NotFlushed",
    "OnDelivery",
    "PredictionReader",
    "Producer",
    "ProducerClosed",
    "ProducerError",
    "Schemas",
    "SendOptions",
    "Start",
    "UnknownTopic",
]
