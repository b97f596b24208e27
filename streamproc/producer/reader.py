"""Producer SDK: the reader of the service's predictions: batches of shop.OrderPrediction
records in the caller's consumer group, each committed once the caller has handled it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, Literal, Protocol, cast

from confluent_kafka import Consumer, KafkaError, KafkaException

from streamproc.adapters.kafka.client_logs import client_config
from streamproc.avro_records import OrderPrediction
from streamproc.config.kafka import KafkaConnection
from streamproc.errors import InfraError
from streamproc.producer.environment import read_environment
from streamproc.producer.errors import UnknownTopic
from streamproc.producer.schemas import Schemas
from streamproc.producer.topics import PREDICTION_SCHEMA, PREDICTIONS_TOPIC

log = logging.getLogger(__name__)

Start = Literal["latest", "earliest"]
_READ_WAIT_S = 1.0  # one read's wait for records, within a batches() loop


class ConsumerClient(Protocol):
    """The part of confluent_kafka.Consumer this uses (tests pass a fake)."""

    def subscribe(self, topics: list[str]) -> None: ...

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]: ...

    def commit(self, *, asynchronous: Literal[False]) -> object: ...

    def close(self) -> None: ...


class PredictionReader:
    """Reads the fraud predictions the service writes, as a member of the caller's consumer
    group (several readers of one group share the partitions).

    At least once for the caller: a batch is committed only once the caller has handled it
    (it asks `batches()` for the next one, or calls `commit()`), so a batch whose handling
    raised, or a crash, leaves it to be read again. The service writes predictions in Kafka
    transactions: this reads committed ones only (isolation.level=read_committed), never one
    of an aborted transaction. A prediction read twice has the same event_id: drop repeats
    by it. `start` is where a group with no committed position begins."""

    def __init__(  # noqa: PLR0913 - each a documented choice; past the first three, by name only
        self,
        kafka: KafkaConnection | str,
        group: str,
        schemas: Schemas | None = None,
        *,
        topic: str = PREDICTIONS_TOPIC,
        start: Start = "latest",
        client: ConsumerClient | None = None,
    ) -> None:
        """`kafka`, `schemas`: as the Producer takes them. `client`: a
        confluent_kafka.Consumer-like client; None: one made from `kafka`."""
        if isinstance(kafka, str):
            kafka = KafkaConnection(kafka)
        _, self._serde = (schemas or Schemas()).load()
        self._topic = topic
        self._client: ConsumerClient = (
            client
            if client is not None
            else Consumer(
                client_config(
                    kafka,
                    **{
                        "group.id": group,
                        "isolation.level": "read_committed",
                        "enable.auto.commit": False,
                        "auto.offset.reset": start,
                    },
                )
            )
        )
        self._client.subscribe([topic])

    @classmethod
    def from_settings(
        cls, group: str, *, topic: str = PREDICTIONS_TOPIC, start: Start = "latest"
    ) -> PredictionReader:
        """A reader for the service's environment (STREAMPROC_KAFKA_*, the schemas and the
        registry), as Producer.from_settings reads it."""
        env = read_environment()
        return cls(env.kafka, group, env.schemas, topic=topic, start=start)

    def read(self, max_records: int = 500, timeout_s: float = 1.0) -> list[OrderPrediction]:
        """The predictions that come within `timeout_s`, up to `max_records` (maybe none).
        Not committed: call commit() once they are handled."""
        batch = []
        for message in self._client.consume(max_records, timeout_s):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise UnknownTopic(f"{self._topic}: {error.str()}")
                raise InfraError(f"{self._topic}: {error.str()}")
            record = self._serde.decode(message.value(), PREDICTION_SCHEMA)
            batch.append(cast(OrderPrediction, record))
        return batch

    def commit(self) -> None:
        """Commits every prediction read so far. One that fails (the group moved the
        partitions to another reader meanwhile) is logged: those are read again."""
        try:
            self._client.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:  # nothing read since the last
                log.warning("predictions not committed, they will be read again: %s", exc)

    def batches(
        self, max_records: int = 500, idle_timeout_s: float | None = None
    ) -> Iterator[list[OrderPrediction]]:
        """Batches as they come, each committed when the caller asks for the next. A batch
        the loop leaves (break, an exception) is not: commit() it if it was handled. Ends
        after `idle_timeout_s` without a prediction (None: never)."""
        idle_since = time.monotonic()
        while True:
            batch = self.read(max_records, _READ_WAIT_S)
            if batch:
                yield batch
                self.commit()
                idle_since = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - idle_since >= idle_timeout_s:
                return

    def close(self) -> None:
        """Leaves the group (its partitions go to the others at once); commits nothing."""
        self._client.close()

    def __enter__(self) -> PredictionReader:
        return self

    def __exit__(self, *_exception: object) -> None:
        self.close()
