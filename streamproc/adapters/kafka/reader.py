"""Adapter: a partition reader: the trainer's consumer of the label topic, committing what it
learned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from streamproc.adapters.kafka.client_logs import (
    check_consumed_error,
    client_config,
    list_topics,
)
from streamproc.adapters.kafka.lag import Lags, lag_reporting
from streamproc.config.kafka import KafkaConnection
from streamproc.errors import Unavailable
from streamproc.records import Envelope, Headers

ASK_TIMEOUT_S = 15.0  # how long an ask for metadata or committed offsets may take


class PartitionReader:
    """Reads every partition of a topic from given offsets; it never commits: the reader
    keeps its positions itself (the trainer's are in its snapshots). A partition without a
    given offset starts where `group` has committed one (a new deployment can be started
    at the end of the topic), else at the beginning. A broker that gives no metadata raises
    Unavailable: the trainer rides it through like any outage.

    `at_end` tells, after each read, which partitions have been read to their end."""

    def __init__(
        self,
        kafka: KafkaConnection,
        topic: str,
        start: dict[int, int],
        group: str,
        report_lag: Callable[[Lags], None] | None = None,
    ) -> None:
        """`report_lag`: told the lag of each partition every few seconds (the trainer's)."""
        self._topic = topic
        lag = lag_reporting(report_lag) if report_lag is not None else {}
        # The end of a partition is told by librdkafka's end-of-partition event: its fetcher
        # moves past transaction markers (after a commit, the last record's offset + 1 stops
        # short of the high watermark), and the event comes in order with the partition's
        # records, so what a read tells of the ends agrees with the records it returns.
        config = {"group.id": group, "enable.auto.commit": False, "enable.partition.eof": True}
        self._consumer = Consumer(client_config(kafka, **config, **lag))
        try:
            partitions = list_topics(self._consumer, ASK_TIMEOUT_S, topic).topics[topic].partitions
            committed = self._consumer.committed(
                [TopicPartition(topic, p) for p in sorted(partitions)], timeout=ASK_TIMEOUT_S
            )
        except KafkaException as exc:
            self._consumer.close()
            raise Unavailable("kafka", f"{topic}: no metadata or offsets: {exc}") from exc
        self._at_end = dict.fromkeys(sorted(partitions), False)
        self._consumer.assign(
            [
                TopicPartition(
                    topic,
                    c.partition,
                    start.get(c.partition, c.offset if c.offset >= 0 else OFFSET_BEGINNING),
                )
                for c in committed
            ]
        )

    def read(self, max_records: int, timeout_s: float) -> list[Envelope]:
        envelopes = []
        at_end = self._at_end
        for message in self._consumer.consume(max_records, timeout=timeout_s):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end[message.partition() or 0] = True
                check_consumed_error(error, self._topic)
                continue
            at_end[message.partition() or 0] = False
            envelopes.append(envelope_of(message))
        return envelopes

    @property
    def at_end(self) -> dict[int, bool]:
        """Every partition, and whether the reads so far have reached its end (the end it
        had then: records written since are not known of until read)."""
        return dict(self._at_end)

    def partition_count(self, topic: str) -> int:
        """How many partitions `topic` has (the trainer asks it of the scored topic)."""
        try:
            return len(list_topics(self._consumer, ASK_TIMEOUT_S, topic).topics[topic].partitions)
        except KafkaException as exc:
            raise Unavailable("kafka", f"{topic}: no metadata: {exc}") from exc

    def close(self) -> None:
        self._consumer.close()


def envelope_of(message: Any) -> Envelope:
    """A consumed confluent-kafka message (not an error event) as an Envelope."""
    kind, stamp = message.timestamp()
    return Envelope(
        message.topic(),
        message.partition() or 0,
        message.offset() or 0,
        message.key(),
        message.value(),
        cast(Headers, tuple(message.headers() or ())),
        stamp if kind != TIMESTAMP_NOT_AVAILABLE else None,
    )
