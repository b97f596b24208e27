"""Adapter: a worker's input. One librdkafka consumer, in its own thread, fetches whole batches and
hands each to the event loop; only finished batches' offsets are committed (Positions), as
its Committer does it (commits.py: at least once, or in transactions with the outputs).

Why not Faust's consumer: its per-record drain loop costs 130-200 us of CPU per record and
hop, whatever the settings; one hand-over per fetch costs a few us per record.

The thread is the only one that touches the Consumer: while a rebalance callback runs, a call
from any other thread blocks, so the event loop reports finished batches to Positions and
this thread stores their offsets before each poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer
from confluent_kafka import TopicPartition as KafkaPartition

from streamproc.adapters.kafka.alignment import PartitionAligner
from streamproc.adapters.kafka.client_logs import check_consumed_error, client_config
from streamproc.adapters.kafka.commits import AutoCommits, Committer
from streamproc.adapters.kafka.lag import Lags, lag_reporting
from streamproc.adapters.kafka.positions import FetchedBatch, Partition, Positions
from streamproc.adapters.kafka.retention import RetentionGap, retention_gaps
from streamproc.adapters.outage import Outages
from streamproc.config.kafka import KafkaConnection
from streamproc.records import Envelope, Headers

log = logging.getLogger(__name__)

# A worker is behind its input (it then commits less often) when this many fetches in a row
# come back full: one full fetch is a burst (a producer's batch), which a worker at half load
# meets often; taken for a backlog, its commits waited a second and its p50 rose to 1.6 s.
BEHIND_AFTER_FULL_FETCHES = 3


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """How a worker's consumer fetches and commits (the STREAMPROC_* settings behind each
    are documented in config/settings.py)."""

    kafka: KafkaConnection
    group: str
    topics: tuple[str, ...]
    batch_size: int = 500  # records per fetch, at most
    batches_in_flight: int = 4  # fetched and not yet acked, per topic
    commit_interval_s: float = 1.0
    session_timeout_s: float = 30.0
    fetch_wait_ms: int = 5
    fetch_min_bytes: int = 65_536
    idle_poll_s: float = 0.1  # how often an idle consumer looks up (stop, stored offsets)
    align_ms: int | None = None  # partitions kept this close in log time (alignment.py)

    @property
    def revoke_timeout_s(self) -> float:
        """How long a revoke waits for begun batches: well inside the session timeout."""
        return self.session_timeout_s / 2

    def consumer_overrides(self) -> dict[str, Any]:
        """What the worker's consumer sets over librdkafka's defaults."""
        return {
            "group.id": self.group,
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(self.session_timeout_s * 1000),
            # a partition moves within a heartbeat or two of a rebalance's start
            "heartbeat.interval.ms": int(min(1.0, self.session_timeout_s / 10) * 1000),
            # the broker answers once it has fetch.min.bytes or fetch.wait.max.ms has passed
            "fetch.min.bytes": self.fetch_min_bytes,
            "fetch.wait.max.ms": self.fetch_wait_ms,
            # librdkafka reads ahead up to 64 MB by default: a worker that lags (a backlog, a
            # burst) held that much in memory; a few batches ahead keep it busy just as well
            "queued.max.messages.kbytes": 16_384,
            # in step, a partition read to its end must say so: it then holds back no other
            "enable.partition.eof": self.align_ms is not None,
        }


class Backlog:
    """Whether the worker is behind its input: its last BEHIND_AFTER_FULL_FETCHES fetches
    came back full."""

    def __init__(self, batch_size: int) -> None:
        self._batch_size = batch_size
        self._full_in_a_row = 0

    def fetched(self, records: int) -> bool:
        """Note a fetch of `records`; whether the worker is behind now."""
        self._full_in_a_row = self._full_in_a_row + 1 if records >= self._batch_size else 0
        return self._full_in_a_row >= BEHIND_AFTER_FULL_FETCHES


class ConsumerWatch(Protocol):
    """What the consumer tells the rest of the worker, and asks it."""

    @property
    def outages(self) -> Outages: ...

    def retention_gap(self, gap: RetentionGap) -> None: ...

    def consumer_lag(self, lags: Lags) -> None: ...


def _ignore(gap: RetentionGap) -> None:
    """No watch: the gap is logged only."""


class BatchConsumer:
    """Fetches batches until stopped; `hand_over` (called in this thread, may block) passes
    each to the processing side, which calls `positions.begin` and `positions.finish`."""

    def __init__(
        self,
        settings: SourceSettings,
        positions: Positions,
        hand_over: Callable[[FetchedBatch], None],
        committer: Committer | None = None,
        watch: ConsumerWatch | None = None,
    ) -> None:
        """With a `watch`, the partitions are paused while a dependency is out, and it is
        told of each partition whose committed offset retention overtook (logged too)."""
        self._settings = settings
        self._outages = watch.outages if watch is not None else None
        self._on_gap = watch.retention_gap if watch is not None else _ignore
        self._lag_reporting = lag_reporting(watch.consumer_lag) if watch is not None else {}
        self._held: list[Any] = []  # records polled as the partitions were being paused
        self._committer = committer or AutoCommits(
            positions, settings.commit_interval_s, settings.revoke_timeout_s
        )
        self._positions = positions
        self._hand_over = hand_over
        self._stopping = threading.Event()
        self._abandoned = threading.Event()
        self._closed = threading.Event()
        self._room = len(settings.topics)  # about one batch waiting per agent
        self._aligner = (
            None if settings.align_ms is None else PartitionAligner[Any](settings.align_ms)
        )
        self._paused: set[Partition] = set()  # by the aligner: partitions running ahead

    def stop(self) -> None:
        """Fetch no more; `run` then waits for begun batches, commits, and returns."""
        self._stopping.set()

    def abandon(self, timeout_s: float = 5.0) -> None:
        """On a failure: stop without committing anything more, leave the group (its
        partitions move now, and are read again from their last commit), and wait up to
        `timeout_s` for that."""
        self._abandoned.set()
        self._stopping.set()
        self._closed.wait(timeout_s)

    def run(self) -> None:
        """Poll, hand over, store finished offsets; until stopped. Blocks: run it in a
        thread of its own. Raises InfraError on a fatal Kafka error."""
        settings = self._settings
        committer = self._committer
        consumer = Consumer(
            client_config(
                settings.kafka,
                **settings.consumer_overrides(),
                **committer.overrides(),
                **self._lag_reporting,
            )
        )
        consumer.subscribe(
            list(settings.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            committer.start(consumer)
            self._fetch(consumer)
            if not self._abandoned.is_set():
                committer.stop(consumer)
        except BaseException:
            self._abandoned.set()  # the rebalance callbacks of close() commit nothing
            raise
        finally:
            if self._abandoned.is_set():
                committer.abandon()
            consumer.close()  # leaves the group now: its partitions move without a timeout
            self._closed.set()

    def _fetch(self, consumer: Consumer) -> None:
        settings = self._settings
        behind = False
        backlog = Backlog(settings.batch_size)
        while not self._stopping.is_set():
            outages = self._outages
            if outages is not None and outages.active:
                self._ride_out(consumer, outages)
                continue
            self._committer.tick(consumer, behind)
            behind = False
            if not self._positions.wait_for_room(self._room, settings.idle_poll_s):
                continue
            # One record first (returns as soon as there is one), then what is already
            # fetched: small batches when traffic is light, full ones when it is heavy.
            first = consumer.poll(self._committer.poll_timeout(settings.idle_poll_s))
            if first is None and self._aligner is None:
                continue
            more = (
                consumer.consume(settings.batch_size - 1, 0)
                if settings.batch_size > 1 and first is not None
                else []
            )
            behind = backlog.fetched(len(more) + int(first is not None))
            held, self._held = self._held, []
            fetched = [*held, *([first] if first is not None else []), *more]
            if self._aligner is not None:
                fetched = self._in_step(consumer, self._aligner, fetched)
            for batch in self._batches(fetched):
                self._hand_over(self._positions.hand_over(batch))

    def _in_step(
        self, consumer: Consumer, aligner: PartitionAligner[Any], fetched: list[Any]
    ) -> list[Any]:
        """What of the fetched records (and those held before) may go now; the partitions
        with records held back are paused, the others resumed. Every turn, fetch or not: a
        revoke may have freed what was held."""
        errors = aligner.add(fetched)
        released = aligner.release()
        holding = aligner.holding()
        if ahead := holding - self._paused:
            consumer.pause(_kafka_partitions(ahead))
        if behind := self._paused - holding:
            consumer.resume(_kafka_partitions(behind))
        self._paused = holding
        return [*errors, *released]

    def _ride_out(self, consumer: Consumer, outages: Outages) -> None:
        """While a dependency is out: partitions paused (librdkafka drops what it had
        fetched and resumes after the last record it gave), polls go on (the group keeps
        this worker), no commit (the agents are busy retrying their batch)."""
        consumer.pause(consumer.assignment())
        try:
            while outages.active and not self._stopping.is_set():
                message = consumer.poll(self._settings.idle_poll_s)
                if message is not None:
                    self._held.append(message)
        finally:
            consumer.resume(consumer.assignment())
            self._paused = set()  # the aligner pauses again what runs ahead

    def _batches(self, messages: Sequence[Any]) -> list[FetchedBatch]:
        """The fetched records as one batch per topic, each partition tagged with its
        current assignment epoch."""
        batches: dict[str, FetchedBatch] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                check_consumed_error(error, "Kafka consumer")
                continue
            topic, partition = message.topic(), message.partition()
            batch = batches.get(topic)
            if batch is None:
                batch = batches[topic] = FetchedBatch(topic, [], {})
            if partition not in batch.epochs:
                batch.epochs[partition] = self._positions.epoch((topic, partition))
            kind, stamp = message.timestamp()
            batch.records.append(
                Envelope(
                    topic,
                    partition,
                    message.offset(),
                    message.key(),
                    message.value(),
                    cast(Headers, message.headers() or ()),
                    stamp if kind != TIMESTAMP_NOT_AVAILABLE else None,
                )
            )
        return list(batches.values())

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        self._positions.assign(_partitions(partitions))
        if self._aligner is not None:
            self._aligner.assign(_partitions(partitions))
        for gap in retention_gaps(consumer, partitions):
            self._on_gap(gap)
        if self._outages is not None and self._outages.active:
            consumer.pause(partitions)
        log.info("assigned %s", _names(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        """Before a partition moves: its begun batches finish, their offsets are committed
        (nothing is, once abandoned)."""
        if self._abandoned.is_set():
            self._positions.lose(_partitions(partitions))
        else:
            self._committer.revoke(consumer, _partitions(partitions))
        self._forget(partitions)
        log.info("revoked %s", _names(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        self._committer.lose(consumer, _partitions(partitions))
        self._forget(partitions)
        log.warning(
            "lost %s (this worker was out of the group too long); "
            "their uncommitted records are read again by their new owner",
            _names(partitions),
        )

    def _forget(self, partitions: list[KafkaPartition]) -> None:
        """Partitions gone: what the aligner held of them is dropped, unhanded."""
        if self._aligner is not None:
            self._aligner.revoke(_partitions(partitions))
            self._paused -= set(_partitions(partitions))


def _partitions(partitions: list[KafkaPartition]) -> list[Partition]:
    return [(p.topic, p.partition) for p in partitions]


def _kafka_partitions(partitions: set[Partition]) -> list[KafkaPartition]:
    return [KafkaPartition(topic, partition) for topic, partition in sorted(partitions)]


def _names(partitions: list[KafkaPartition]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"
