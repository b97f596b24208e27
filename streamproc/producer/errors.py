"""Producer SDK: the errors a caller handles, each saying what went wrong and what to do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streamproc.adapters.avro.validation import Problem
from streamproc.errors import StreamprocError

if TYPE_CHECKING:
    from streamproc.producer.delivery import Delivery


class ProducerError(StreamprocError):
    """Base of the errors of the producer SDK."""


class InvalidRecord(ProducerError):
    """A record its topic's schema does not allow; raised before anything is sent. `problems`
    has one entry per field: its path, what the schema expects, what the record holds;
    `version` is the schema version whose field names the record comes closest to."""

    def __init__(
        self, schema_name: str, problems: Sequence[Problem], version: int | None = None
    ) -> None:
        self.schema_name = schema_name
        self.problems = tuple(problems)
        self.version = version  # the schema version the record was checked against
        named = f"{schema_name} v{version}" if version is not None else schema_name
        super().__init__(f"not a valid {named}: " + "; ".join(map(str, self.problems)))


class UnknownTopic(ProducerError):
    """A topic this producer has no schema for, or one the cluster does not have."""


class DeliveryFailed(ProducerError):
    """A record that was not delivered: refused by the producer (over its size limit) or by the
    broker (over the topic's max.message.bytes), not acked within the delivery timeout, or
    abandoned when the producer closed. `error` is the confluent_kafka.KafkaError when Kafka
    gave one; `record` is the record, to send again or to set aside."""

    def __init__(
        self, topic: str, record: Mapping[str, Any], error: Any | None, detail: str
    ) -> None:
        self.topic = topic
        self.record = record
        self.error = error
        super().__init__(f"{topic}: not delivered: {detail}")


class ProducerClosed(ProducerError):
    """A send on a producer that was closed, or that failed for good (its cause says why)."""


class NotFlushed(ProducerError):
    """Records still not delivered when the producer closed; they were abandoned. `undelivered`
    holds their deliveries (each failed with DeliveryFailed)."""

    def __init__(self, undelivered: Sequence[Delivery], timeout_s: float) -> None:
        self.undelivered = tuple(undelivered)
        super().__init__(
            f"{len(self.undelivered)} records not delivered within {timeout_s:g} s of the "
            "close; is Kafka reachable? Give close() a longer timeout to wait for them"
        )
