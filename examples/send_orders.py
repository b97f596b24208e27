"""Send a few shop orders with the producer SDK, each delivery reported as it is acked; then
a record its schema does not allow (InvalidRecord: nothing is sent) and one Kafka refuses
(DeliveryFailed).

Against the local stack (`make up`, then `make topics`), from the repository's root:

    .venv/bin/python examples/send_orders.py --orders 5

It reads the service's STREAMPROC_* environment: STREAMPROC_KAFKA_BOOTSTRAP and the Kafka TLS
and SASL settings, STREAMPROC_SCHEMAS_DIR, STREAMPROC_SCHEMA_REGISTRY_URL, STREAMPROC_PIPELINE
(the topics it may send to); the defaults fit `make up`. With a worker running
(`streamproc worker`), examples/read_predictions.py prints the orders' fraud scores.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Sequence

from streamproc.avro_records import OrderSubmitted
from streamproc.producer import Delivered, DeliveryFailed, InvalidRecord, Producer

ORDERS = "shop.order.v1"
TOO_LARGE = 1_100_000  # characters: over the producer's 1,000,000-byte record limit


def an_order(customer_id: str) -> OrderSubmitted:
    """An order as the web checkout publishes it: the gross amount, the time in epoch ms."""
    return {
        "event_id": str(uuid.uuid4()),
        "source": "web",
        "customer_id": customer_id,
        "customer_name": "Ada Lovelace",
        "email": "ada@example.org",
        "country": "DE",
        "amount": 119.0,
        "amount_includes_tax": True,
        "tax_rate": None,
        "currency": "EUR",
        "items": 2,
        "occurred_at": int(time.time() * 1000),
        "tz": None,
        "session_duration": 42.5,
        "app_version": None,
        "payment_method": "card",
    }


def report(outcome: Delivered | DeliveryFailed) -> None:
    """Each send's outcome, called from the producer's delivery thread."""
    if isinstance(outcome, DeliveryFailed):
        print(f"not delivered: {outcome}", flush=True)
    else:
        print(f"delivered: partition {outcome.partition}, offset {outcome.offset}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send a few shop orders to shop.order.v1.")
    parser.add_argument("--orders", type=int, default=5, help="how many (default 5)")
    args = parser.parse_args(argv)

    with Producer.from_settings() as producer:  # leaving the block waits for every ack
        for number in range(args.orders):
            order = an_order(f"customer-{number}")
            print(f"sending order {order['event_id']}", flush=True)
            producer.send(ORDERS, order, on_delivery=report)

        try:  # checked against shop.OrderSubmitted before anything is sent
            producer.send(ORDERS, {**an_order("customer-0"), "items": "two"})
        except InvalidRecord as error:
            print(f"refused: {error}", flush=True)

        too_large = {**an_order("customer-0"), "customer_name": "x" * TOO_LARGE}
        try:  # a send's Delivery is a future: result() waits for the ack, or raises
            producer.send(ORDERS, too_large).result(timeout=30)
        except DeliveryFailed as error:
            print(f"failed: {error}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
