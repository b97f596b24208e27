"""Adapter: a consumer group that comes back after its committed offsets fell out of the log.

Retention deleted records the group never read; librdkafka would quietly go on from the log's
start (auto.offset.reset=earliest). That is the right recovery (the log is all there is), but
never a silent one: at each assignment the committed offsets are held against the logs'
starts, and a gap is logged as an error, with what was lost, and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionGap:
    """`committed` is below `log_start`: the records between were deleted unread."""

    topic: str
    partition: int
    committed: int
    log_start: int

    @property
    def lost(self) -> int:
        return self.log_start - self.committed


def retention_gaps(
    consumer: Consumer, partitions: Sequence[KafkaPartition], timeout_s: float = 10.0
) -> list[RetentionGap]:
    """The assigned partitions whose committed offset is older than their log's start, each
    logged as an error. Asking the broker may fail (it is restarting): then nothing is
    reported, with a warning."""
    if not partitions:
        return []
    keys = [KafkaPartition(p.topic, p.partition) for p in partitions]
    try:
        committed = consumer.committed(keys, timeout=timeout_s)
        gaps = []
        for tp in committed:
            if tp.offset < 0:
                continue  # nothing committed: the group starts where auto.offset.reset says
            low, _ = consumer.get_watermark_offsets(tp, timeout=timeout_s)
            if tp.offset < low:
                gaps.append(RetentionGap(tp.topic, tp.partition, tp.offset, low))
    except KafkaException as exc:
        log.warning("could not check the committed offsets against retention: %s", exc)
        return []
    for gap in gaps:
        log.error(
            "%s[%d]: the committed offset %d is older than the log's start %d: retention "
            "deleted %d records this consumer group never read. Reading on from %d; the "
            "state (features, models) misses them: rebuild it by a replay from an archive "
            "if they matter (docs/operations.md)",
            gap.topic,
            gap.partition,
            gap.committed,
            gap.log_start,
            gap.lost,
            gap.log_start,
        )
    return gaps
