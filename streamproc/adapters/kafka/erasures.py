"""Adapter: the compacted erasure topic: one record per erased subject, keyed by its pseudonym
(never by the subject), written by `streamproc erase`; a worker reads it whole as it starts and
follows it after (blocking calls: run them in a thread)."""

from __future__ import annotations

import orjson

from streamproc.adapters.kafka.snapshots import SnapshotLog, SnapshotTopic, last_wins
from streamproc.config.kafka import KafkaConnection
from streamproc.core.erasure import PSEUDONYM_PREFIX

ERASURES_TOPIC = "streamproc.erasures.v1"


class ErasureTopic:
    """The erasures on a compacted topic; the snapshot topic's client reads and writes it (a
    test hands it one in memory)."""

    def __init__(self, log: SnapshotLog) -> None:
        self._log = log

    @classmethod
    def connect(cls, kafka: KafkaConnection, timeout_s: float = 30.0) -> ErasureTopic:
        return cls(SnapshotTopic(kafka, ERASURES_TOPIC, timeout_s))

    def record(self, pseudonym: str, erased_at_ms: int) -> None:
        """Returns once the broker has acked it; raises InfraError otherwise."""
        self._log.publish(pseudonym, orjson.dumps({"erased_at": erased_at_ms}))

    def read_new(self) -> set[str]:
        """The pseudonyms recorded since the last call (the whole topic on the first)."""
        return set(self._log.read_new(PSEUDONYM_PREFIX, last_wins))

    def close(self) -> None:
        self._log.close()
