"""Producer SDK: what a send becomes: a future of where the record landed, settled by
librdkafka's delivery report, and the caller's callback told first."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from streamproc.producer.errors import DeliveryFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivered:
    """A record the broker acked: where it is."""

    topic: str
    partition: int
    offset: int
    key: bytes | None


# Told each send's outcome, in the thread that served its delivery report.
OnDelivery = Callable[[Delivered | DeliveryFailed], None]


class Delivery(Future[Delivered]):
    """One send. `result(timeout)` waits for the broker's ack and returns the Delivered, or
    raises DeliveryFailed; the producer's delivery thread settles it, nobody need poll."""

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        record: Mapping[str, Any],
        on_delivery: OnDelivery | None,
    ) -> None:
        super().__init__()
        self.topic = topic
        self.key = key
        self.record = record
        self._on_delivery = on_delivery

    def report(self, error: Any | None, message: Any) -> None:
        """Settles it from its delivery report: a KafkaError, or the acked message."""
        if error is None:
            self.settle(Delivered(self.topic, message.partition(), message.offset(), self.key))
        else:
            self.settle(
                DeliveryFailed(self.topic, self.record, error, f"{error.name()}: {error.str()}")
            )

    def settle(self, outcome: Delivered | DeliveryFailed) -> None:
        """The callback first, so that a caller woken by the future sees what it did. Once
        only: a report that comes after the producer gave the record up changes nothing."""
        if self.done():
            return
        if self._on_delivery is not None:
            try:
                self._on_delivery(outcome)
            except Exception:  # the caller's bug must not stop the deliveries of others
                log.exception("the delivery callback of a record for %s raised", self.topic)
        if isinstance(outcome, DeliveryFailed):
            self.set_exception(outcome)
        else:
            self.set_result(outcome)
