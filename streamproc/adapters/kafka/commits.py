"""Adapter: how a worker's consumer makes its progress durable, in the consumer's thread.

- AutoCommits (at-least-once): finished batches' offsets are stored, and librdkafka commits
  them every interval. A crash repeats the outputs of the batches finished since.
- TransactionalCommits (exactly-once, the default): the agents are held still, and the
  outputs sent since the last commit are committed in one Kafka transaction with the offsets
  of the batches that made them (see transactions.py). That happens every interval under
  load (every second at most while the input is ahead of the worker: throughput counts
  then, not latency), and as soon as the worker is at rest with work done: readers of our topics
  (read_committed) see outputs only once committed, and a worker with spare time need not
  keep them waiting for the interval (each hop through a topic would add half of it).

Both commit on every revoke (a partition's new owner starts where this worker stopped) and on
stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from streamproc.adapters.kafka.positions import Partition, Positions
from streamproc.adapters.kafka.transactions import QuietMoment, Transactions

log = logging.getLogger(__name__)


class Committer(Protocol):
    """What the consumer's thread calls: before each poll, in each rebalance, at stop."""

    def overrides(self) -> dict[str, Any]: ...

    def start(self, consumer: Consumer) -> None: ...

    def tick(self, consumer: Consumer, behind: bool = False) -> None:
        """Between polls; `behind`: the last fetch came back full (the input is ahead)."""
        ...

    def poll_timeout(self, idle_s: float) -> float:
        """How long the consumer may block in a poll: `idle_s`, or less to tick sooner."""
        ...

    def revoke(self, consumer: Consumer, partitions: Sequence[Partition]) -> None: ...

    def lose(self, consumer: Consumer, partitions: Sequence[Partition]) -> None: ...

    def stop(self, consumer: Consumer) -> None: ...

    def abandon(self) -> None: ...


# at rest, a commit follows the finish of the last batch within a poll of this …
_AT_REST_POLL_S = 0.005
# … but not sooner than this after the previous one (each commit writes markers to every
# partition it touched, on the broker)
_AT_REST_GAP_S = 0.02

# behind its input (its fetches come back full), a worker commits no more often than
# this: latency is the queue's then, and each commit holds the agents (~6 ms here, 10 a
# second cost a tenth of the throughput)
_BEHIND_INTERVAL_S = 1.0

Metadata = Callable[[], str | None]  # committed with the offsets: the Redis state's epoch


class AutoCommits:
    """At least once: store finished offsets; librdkafka commits them every interval."""

    def __init__(
        self,
        positions: Positions,
        interval_s: float,
        revoke_timeout_s: float,
        metadata: Metadata = lambda: None,
    ) -> None:
        self._positions = positions
        self._metadata = metadata
        self._interval_s = interval_s
        self._revoke_timeout_s = revoke_timeout_s

    def overrides(self) -> dict[str, Any]:
        return {
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,  # only finished batches are stored
            "auto.commit.interval.ms": int(self._interval_s * 1000),
        }

    def start(self, consumer: Consumer) -> None:
        """Nothing to set up."""

    def poll_timeout(self, idle_s: float) -> float:
        return idle_s  # outputs are visible at once: no hurry to store offsets

    def tick(self, consumer: Consumer, behind: bool = False) -> None:
        _store(consumer, _offsets(self._positions.take_committable(), self._metadata()))

    def revoke(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """Before a partition moves: its begun batches finish, their offsets are committed."""
        offsets = self._positions.revoke(partitions, self._revoke_timeout_s)
        _store(consumer, _offsets(offsets, self._metadata()))
        _commit(consumer)

    def lose(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        self._positions.lose(partitions)

    def stop(self, consumer: Consumer) -> None:
        if not self._positions.drain(self._revoke_timeout_s):
            log.warning("stopping with batches unfinished: they are read again on restart")
        self.tick(consumer)
        _commit(consumer)

    def abandon(self) -> None:
        """Nothing to undo: only finished batches were stored."""


@dataclass(frozen=True)
class CommitHooks:
    """What a transactional commit asks and tells: the metadata to commit with the offsets
    (the Redis state's epoch), and how long each commit held the agents (a metric)."""

    metadata: Metadata = lambda: None
    held: Callable[[float], None] = lambda _seconds: None


class TransactionalCommits:
    """Exactly once: outputs and input offsets committed together, every `interval_s`."""

    def __init__(
        self,
        positions: Positions,
        transactions: Transactions,
        quiet: QuietMoment,
        interval_s: float,
        hooks: CommitHooks | None = None,
    ) -> None:
        self._positions = positions
        self._hooks = hooks or CommitHooks()
        self._transactions = transactions
        self._quiet = quiet
        self._interval_s = interval_s
        self._behind = False  # a fetch came back full since the last commit
        self._last = time.monotonic()

    def overrides(self) -> dict[str, Any]:
        return {"enable.auto.commit": False, "enable.auto.offset.store": False}

    def start(self, consumer: Consumer) -> None:
        self._transactions.start()

    def poll_timeout(self, idle_s: float) -> float:
        """Short while batches are in processing: the commit follows soon after they finish."""
        return min(idle_s, _AT_REST_POLL_S) if self._positions.busy() else idle_s

    def tick(self, consumer: Consumer, behind: bool = False) -> None:
        self._behind |= behind
        interval_s = max(self._interval_s, _BEHIND_INTERVAL_S) if self._behind else self._interval_s
        since = time.monotonic() - self._last
        at_rest = not self._behind and self._positions.at_rest()  # a backlog is never at rest
        if since >= interval_s or (since >= _AT_REST_GAP_S and at_rest):
            self._commit(consumer)

    def revoke(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """Commit everything finished (the revoked partitions' batches among it) before they
        move; their queued batches are dropped."""
        self._commit(consumer, then=lambda: self._positions.revoke(partitions, 0))

    def lose(self, consumer: Consumer, partitions: Sequence[Partition]) -> None:
        """The transaction may hold outputs of batches of lost partitions, whose new owner
        reads them again: abort it, and process the rest again too."""
        self._quiet.hold()
        try:
            self._positions.lose(partitions)
            self._positions.take_committable()
            self._transactions.abort_and_begin()
            _rewind(consumer, self._positions)
        finally:
            self._quiet.release()

    def stop(self, consumer: Consumer) -> None:
        self._commit(consumer)

    def abandon(self) -> None:
        """Abort the open transaction now: readers of our topics need not wait for its
        timeout (its input is read again from the last commit)."""
        self._transactions.close()

    def _commit(self, consumer: Consumer, then: Any = None) -> None:
        started = time.monotonic()
        self._quiet.hold()
        try:
            offsets = _offsets(self._positions.take_committable(), self._hooks.metadata())
            committed = self._transactions.commit(offsets, consumer.consumer_group_metadata())
            if then is not None:
                then()
            if not committed:
                _rewind(consumer, self._positions)
        finally:
            self._quiet.release()
        self._last = time.monotonic()
        self._behind = False
        self._hooks.held(self._last - started)


def _rewind(consumer: Consumer, positions: Positions) -> None:
    """Seek every owned partition back to its committed offset, and drop the batches fetched
    before (a new assignment epoch): what the aborted transaction held is processed again."""
    owned = positions.owned()
    if not owned:
        return
    committed = consumer.committed([KafkaPartition(t, p) for t, p in owned], timeout=30)
    for partition in committed:
        offset = partition.offset if partition.offset >= 0 else OFFSET_BEGINNING
        consumer.seek(KafkaPartition(partition.topic, partition.partition, offset))
    positions.assign(owned)
    log.warning("rewound %d partitions to their committed offsets", len(owned))


def _offsets(offsets: dict[Partition, int], metadata: str | None) -> list[KafkaPartition]:
    if metadata is None:  # confluent-kafka takes a str or nothing, not None
        return [KafkaPartition(t, p, o) for (t, p), o in offsets.items()]
    return [KafkaPartition(t, p, o, metadata=metadata) for (t, p), o in offsets.items()]


def _store(consumer: Consumer, offsets: list[KafkaPartition]) -> None:
    if offsets:
        consumer.store_offsets(offsets=offsets)


def _commit(consumer: Consumer) -> None:
    """Commit the stored offsets now; nothing stored since the last commit is no error."""
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._NO_OFFSET:
            log.warning("commit failed (the records are read again): %s", exc)
