"""Adapter: dead letters re-sent to the topics they were read from, each once.

Progress is a consumer group's committed offsets on the DLQ, committed in the transaction that
re-sends the records (send_offsets_to_transaction): the re-sent records and the progress
become visible together or not at all, so a run that fails anywhere re-sends nothing twice.

`<group>` holds how far re-driving every reason has got, `<group>.<reason>` how far re-driving
one reason alone has. A run for one reason starts where the later of the two is; a run for
every reason passes over the dead letters a one-reason run has re-sent. Two runs on one DLQ at
a time are not guarded against, except two of the same group: the newer fences the older
(one transactional id per group and DLQ).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer, TopicPartition

from streamproc.adapters.kafka.admin import committed_offsets
from streamproc.adapters.kafka.browse import TopicReader, partitions_of
from streamproc.adapters.kafka.client_logs import flush
from streamproc.adapters.kafka.dlq import reason_of, redriven
from streamproc.adapters.kafka.producer import make_producer, produce_one
from streamproc.adapters.kafka.transactions import Transactions
from streamproc.config.kafka import KafkaConnection
from streamproc.errors import InfraError
from streamproc.records import Envelope, OutRecord

REDRIVE_GROUP = "streamproc-redrive"
OTHER_REASON = "other_reason"  # a run for one reason leaves the others to later runs
REDRIVEN_BEFORE = "redriven_before"  # by a run for its reason alone
_BATCH = 500  # dead letters per transaction


@dataclass(frozen=True, slots=True)
class RedriveOrder:
    """What to re-drive: the dead letters of `dlq` (of `reason` only, when given), at most
    `limit`; with `dry_run`, nothing is sent and nothing committed."""

    dlq: str
    reason: str | None = None
    limit: int | None = None
    dry_run: bool = False
    group: str = REDRIVE_GROUP

    @property
    def own_group(self) -> str:
        return self.group if self.reason is None else f"{self.group}.{self.reason}"


@dataclass(slots=True)
class RedriveReport:
    """Dead letters re-sent, per topic they went to, and passed over, per why (committed
    ones only, unless a dry run)."""

    redriven: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, other: RedriveReport) -> None:
        self.redriven.update(other.redriven)
        self.skipped.update(other.skipped)


Shown = Callable[[Envelope, OutRecord], None]


def redrive(
    kafka: KafkaConnection, order: RedriveOrder, timeout_s: float, show: Shown | None = None
) -> RedriveReport:
    """Re-send the dead letters `order` names that no run has re-sent; `show` is told of each
    one as it is sent (or would be)."""
    reader = TopicReader(kafka, order.dlq, timeout_s, group=order.own_group)
    sender = None if order.dry_run else _Sender(kafka, order, timeout_s)
    try:
        if sender is not None:
            sender.start()  # fences an older run first: the offsets read next are final
        run = _Run(kafka, order, reader, show)
        reader.open(run.starts())
        while not reader.finished and not run.full:
            batch = run.take(reader.read(_BATCH))
            if sender is not None and batch.positions:
                sender.send(batch.records, batch.positions, reader.group_metadata())
            run.report.add(batch.report)
        return run.report
    finally:
        if sender is not None:
            sender.close()
        reader.close()


@dataclass(slots=True)
class _Batch:
    records: list[OutRecord] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    report: RedriveReport = field(default_factory=RedriveReport)


class _Run:
    """Which dead letters a run re-sends, and where it starts."""

    def __init__(
        self, kafka: KafkaConnection, order: RedriveOrder, reader: TopicReader, show: Shown | None
    ) -> None:
        self._kafka = kafka
        self._order = order
        self._reader = reader
        self._show = show
        self._covered: dict[str, dict[int, int]] = {}  # reason -> its own group's offsets
        self.report = RedriveReport()

    def starts(self) -> dict[int, int]:
        """Where the group has got to, or the DLQ's first record; for one reason, past what
        a run for every reason has handled too."""
        marks = self._reader.watermarks()
        own = self._reader.committed()
        every = (
            committed_offsets(self._kafka, self._order.group, self._order.dlq)
            if self._order.reason is not None
            else {}
        )
        return {p: max(low, own.get(p, 0), every.get(p, 0)) for p, (low, _) in marks.items()}

    @property
    def full(self) -> bool:
        return self._reached(self.report.redriven.total())

    def take(self, dead_letters: Sequence[Envelope]) -> _Batch:
        """The records to re-send for `dead_letters`, up to the limit, and where that leaves
        each partition."""
        batch = _Batch()
        for dead in dead_letters:
            if self._reached(self.report.redriven.total() + batch.report.redriven.total()):
                break
            decided = self._decide(dead)
            if isinstance(decided, OutRecord):
                batch.records.append(decided)
                batch.report.redriven[decided.topic] += 1
                if self._show is not None:
                    self._show(dead, decided)
            else:
                batch.report.skipped[decided] += 1
            batch.positions[dead.partition] = dead.offset + 1
        return batch

    def _reached(self, redriven: int) -> bool:
        return self._order.limit is not None and redriven >= self._order.limit

    def _decide(self, dead: Envelope) -> OutRecord | str:
        reason = reason_of(dead)
        if self._order.reason is not None and reason != self._order.reason:
            return OTHER_REASON
        if self._order.reason is None and dead.offset < self._covered_by(reason, dead.partition):
            return REDRIVEN_BEFORE
        return redriven(dead)

    def _covered_by(self, reason: str, partition: int) -> int:
        if reason not in self._covered:
            group = RedriveOrder(self._order.dlq, reason, group=self._order.group).own_group
            self._covered[reason] = committed_offsets(self._kafka, group, self._order.dlq)
        return self._covered[reason].get(partition, 0)


class _Sender:
    """Re-sends a batch and commits the DLQ offsets past it in one transaction."""

    def __init__(self, kafka: KafkaConnection, order: RedriveOrder, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._dlq = order.dlq
        config: dict[str, Any] = {
            "transactional.id": f"{order.own_group}:{order.dlq}",
            "transaction.timeout.ms": int(timeout_s * 2_000),
        }
        self._producer = make_producer(kafka, **config)
        self._transactions = Transactions(
            self._producer, timeout_s, lambda: self._renew(kafka, config)
        )
        self._topics: set[str] = set()  # re-sent to already: known to exist
        self.committed = 0

    def start(self) -> None:
        self._transactions.start()

    def send(self, records: list[OutRecord], positions: dict[int, int], group: Any) -> None:
        """`records` acked and `positions` committed, or InfraError with neither."""
        failures: list[str] = []

        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                failures.append(str(error))

        for topic in sorted({record.topic for record in records} - self._topics):
            partitions_of(self._producer, topic, self._timeout_s)  # ConfigError: deleted since
            self._topics.add(topic)
        for record in records:
            produce_one(self._producer, record, on_delivery)
        if flush(self._producer, self._timeout_s) or failures:
            self._transactions.abort_and_begin()
            raise self._failed(f"{len(failures)} not acked: {failures[:3]}")
        offsets = [TopicPartition(self._dlq, p, offset) for p, offset in sorted(positions.items())]
        if not self._transactions.commit(offsets, group):
            raise self._failed("the transaction was aborted")
        self.committed += len(records)

    def close(self) -> None:
        self._transactions.close()  # the empty transaction begun after the last commit

    def _failed(self, why: str) -> InfraError:
        return InfraError(
            f"re-driving {self._dlq}: {why}; nothing of the batch is committed "
            f"({self.committed} re-driven and committed before it): run it again"
        )

    def _renew(self, kafka: KafkaConnection, config: dict[str, Any]) -> Producer:
        self._producer = make_producer(kafka, **config)
        return self._producer
