"""Adapter: sending: an idempotent producer, blocking sends for tools, and the batch sender whose
acks a worker awaits while it processes the next batch."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    KafkaError,
    KafkaException,
    Producer,
)

from streamproc.adapters.kafka.client_logs import client_config, flush
from streamproc.adapters.kafka.dlq import (
    MAX_RECORD_BYTES,
    RECORD_REFUSED,
    RECORD_TOO_LARGE,
    wire_size,
)
from streamproc.config.kafka import KafkaConnection
from streamproc.errors import EventRejected, InfraError
from streamproc.records import OutRecord

log = logging.getLogger(__name__)

# Paced sending sleeps once it is this far ahead of its rate: shorter sleeps cost more than
# they pace.
_PACE_S = 0.01


def make_producer(kafka: KafkaConnection, **overrides: Any) -> Producer:
    """Idempotent (acks from all in-sync replicas, no duplicates or reordering on retry); the
    murmur2 partitioner puts a key where Java clients and aiokafka put it."""
    settings = {"linger.ms": 5, "enable.idempotence": True, "partitioner": "murmur2_random"}
    return Producer(client_config(kafka, **{**settings, **overrides}))


def produce_all(
    kafka: KafkaConnection, topic: str, records: Iterable[tuple[bytes | None, bytes, int | None]]
) -> int:
    """Send (key, value, timestamp ms) records and wait for every ack; returns the count."""
    return produce_records(kafka, ((topic, *record) for record in records))


def produce_records(
    kafka: KafkaConnection,
    records: Iterable[tuple[str, bytes | None, bytes, int | None]],
    per_second: float | None = None,
) -> int:
    """Send (topic, key, value, timestamp ms) records, at most `per_second` (None: as fast
    as the broker takes them), and wait for every ack; returns the count."""
    sent = send_records(kafka, records, per_second)
    if sent.refused or sent.lost:
        problems = [*sent.refused, *([f"{sent.lost} lost"] if sent.lost else [])]
        raise InfraError(f"{len(sent.refused) + sent.lost} records not delivered: {problems[:3]}")
    return sent.acked


@dataclass(slots=True)
class Sent:
    """What came of a send: records acked, refused by Kafka for themselves (why each), and
    lost (not answered in time, or timed out in librdkafka: Kafka out of reach)."""

    acked: int = 0
    refused: list[str] = field(default_factory=list)
    lost: int = 0


def send_records(
    kafka: KafkaConnection,
    records: Iterable[tuple[str, bytes | None, bytes, int | None]],
    per_second: float | None = None,
    on_ack: Callable[[], None] = lambda: None,
) -> Sent:
    """`produce_records`, telling `on_ack` of each ack, and returning what came of each record
    instead of raising."""
    producer = make_producer(kafka, **{"linger.ms": 20, "queue.buffering.max.messages": 1_000_000})
    sent = Sent()

    def on_delivery(error: Any, _message: Any) -> None:
        if error is None:
            sent.acked += 1
            on_ack()
        elif lost_for_want_of_a_broker(error):
            sent.lost += 1
        else:
            sent.refused.append(str(error))

    started = time.monotonic()
    for handed, (topic, key, value, timestamp_ms) in enumerate(records, start=1):
        produce_one(producer, OutRecord(topic, key, value, (), timestamp_ms), on_delivery)
        if per_second and (ahead := handed / per_second - (time.monotonic() - started)) > _PACE_S:
            time.sleep(ahead)
    sent.lost += flush(producer, 60)
    return sent


def produce_one(
    producer: Producer, record: OutRecord, on_delivery: Callable[[Any, Any], None]
) -> None:
    """Hand `record` to librdkafka, waiting while its queue is full, and serve the callbacks
    due."""
    while True:
        try:
            producer.produce(
                record.topic,
                record.value,
                record.key,
                headers=list(record.headers),
                on_delivery=on_delivery,
                timestamp=record.timestamp_ms or 0,
            )
            break
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(0.1)
    producer.poll(0)


# A record librdkafka gave up on for want of a broker, not one Kafka refused.
_LOST = (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)


def lost_for_want_of_a_broker(error: Any) -> bool:
    """A delivery error that a broker back may not meet again (unlike a refusal)."""
    return error.code() in _LOST


# Delivery errors of records that a new attempt may not meet: purged (librdkafka purges a
# transaction's records when it aborts) or timed out.
_TRANSACTION_ENDERS = (
    KafkaError._PURGE_QUEUE,
    KafkaError._PURGE_INFLIGHT,
    KafkaError._MSG_TIMED_OUT,
    # what produce() raises once the producer has had its fatal error (fenced): the error
    # it raises is not flagged fatal itself
    KafkaError._FATAL,
)


class Acks:
    """The broker's answers for one submitted batch, filled in by librdkafka's delivery
    callbacks (in the sender's poll thread) and awaited on the event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        count: int,
        doom: Callable[[], None] | None = None,
    ) -> None:
        """`doom` (records sent in a transaction): a record the broker did not take (a
        broker restarting, say), or one not answered in time, fails the transaction, not
        the batch: `doom()` is called, the transaction is abandoned instead of committed,
        and the batch is processed again from its input (commits.py)."""
        self._doom = doom
        self.refusals: dict[int, Any] = {}  # index -> a per-record refusal (REFUSALS)
        self.failures: list[str] = []
        self._loop = loop
        self._left = count
        self._all = loop.create_future()
        if count == 0:
            self._all.set_result(None)

    def on_delivery(self, index: int, error: Any, message: Any) -> None:
        if self._left <= 0:  # abandoned with its producer
            return
        if error is not None:
            if error.code() in BatchSender.REFUSALS:
                self.refusals[index] = error
            elif self._doom is not None and _aborts_transaction(error):
                self._doom()  # no commit can succeed now: end the transaction at once
            else:
                self.failures.append(f"{message.topic()}: {error}")
        self._left -= 1
        if self._left == 0:
            self._loop.call_soon_threadsafe(_settle, self._all)

    def cancel_one(self) -> None:
        """A record that never reached librdkafka (refused at produce time)."""
        self.on_delivery(-1, None, None)

    def abandon(self) -> None:
        """The producer holding the records was replaced: none of them will be answered. In
        a transaction, that transaction is over (aborted) and the batch is processed again;
        otherwise the records are failures."""
        if self._left <= 0:
            return
        if self._doom is None:
            self.failures.append(f"{self._left} records abandoned with a replaced producer")
        self._left = 0
        self._loop.call_soon_threadsafe(_settle, self._all)

    async def all_answered(self, ack_timeout_s: float) -> None:
        """Every record acked or refused for itself; InfraError if any failed otherwise."""
        try:  # librdkafka answers every record within message.timeout.ms; the margin is ours
            await asyncio.wait_for(asyncio.shield(self._all), ack_timeout_s + 30)
        except TimeoutError:
            if self._doom is None:
                raise InfraError(f"records not acked in {ack_timeout_s:.0f} s") from None
            log.warning(
                "%d records not acked in %.0f s: their transaction is aborted",
                self._left,
                ack_timeout_s,
            )
            self._doom()
        if self.failures:
            raise InfraError(f"{len(self.failures)} records not acked: {self.failures[:3]}")


def _aborts_transaction(error: Any) -> bool:
    """An error that ends the transaction (it cannot commit), and that a new attempt may not
    meet: purged by librdkafka on that error, timed out, retriable, or the producer's own end
    (fenced after its transaction timed out while the broker was away: Kafka < 4.0)."""
    return bool(
        error.code() in _TRANSACTION_ENDERS
        or error.retriable()
        or error.fatal()
        or error.txn_requires_abort()
    )


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Submitted:
    """A batch handed to librdkafka: `refused()` waits for its acks."""

    def __init__(self, sender: BatchSender, records: Sequence[OutRecord], acks: Acks) -> None:
        self._sender = sender
        self._records = records
        self._acks = acks
        self.refused_early: dict[int, EventRejected] = {}

    async def refused(self) -> dict[int, EventRejected]:
        """Returns once the broker has acked every record it takes, with those refused for
        themselves by index (reason RECORD_TOO_LARGE or RECORD_REFUSED). Raises InfraError
        when a record is not acked in time or Kafka fails otherwise: nothing may be
        committed then."""
        sender, acks = self._sender, self._acks
        await acks.all_answered(sender.ack_timeout_s)
        refused = dict(self.refused_early)
        # The broker refuses a record batch whole for one record in it; sent alone, each
        # shows whether it was that one. Only a topic whose max.message.bytes is below the
        # producer's limit does this; the batch's others then land after later batches.
        for index in sorted(acks.refusals):
            rejected = await sender.send_alone(self._records[index])
            if rejected is not None:
                refused[index] = rejected
        return dict(sorted(refused.items()))


class BatchSender:
    """A worker's output: a batch goes to librdkafka in one pass; its acks are awaited apart,
    so the worker can process the next batch meanwhile (and acks a batch's input only once
    all of its outputs are acked).

    librdkafka batches, compresses and retries in its own threads; a thread of ours serves
    its delivery callbacks, which count each batch's acks down and wake the event loop once.

    A record Kafka refuses for itself (too large, say) is not the batch's failure: it is
    returned, so that its source can go to the DLQ instead.
    """

    # Per record and permanent: a retry cannot help, and no other record is at fault.
    REFUSALS: dict[int, str] = {
        KafkaError.MSG_SIZE_TOO_LARGE: RECORD_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE: RECORD_TOO_LARGE,  # over the topic's segment.bytes
        KafkaError.INVALID_RECORD: RECORD_REFUSED,
        KafkaError.INVALID_TIMESTAMP: RECORD_REFUSED,
    }

    def __init__(  # noqa: PLR0913 - the producer's settings, each with its default
        self,
        kafka: KafkaConnection,
        ack_timeout_s: float = 60.0,
        linger_ms: float = 5,
        transactional_id: str | None = None,
        transaction_timeout_s: float = 30.0,
        *,
        renames: Mapping[str, str] | None = None,
    ) -> None:
        """With a `transactional_id`, records go out in the transactions a Transactions
        driver (transactions.py) begins and commits on `producer`. A record for a topic in
        `renames` goes to the topic it names instead (a deployment version's own)."""
        if transactional_id is not None:  # librdkafka: no record may outlive its transaction
            ack_timeout_s = min(ack_timeout_s, transaction_timeout_s)
        self.ack_timeout_s = ack_timeout_s
        config: dict[str, Any] = {
            "message.max.bytes": MAX_RECORD_BYTES,
            "message.timeout.ms": int(ack_timeout_s * 1000),
            "linger.ms": linger_ms,
        }
        if transactional_id is not None:
            config["transactional.id"] = transactional_id
            config["transaction.timeout.ms"] = int(transaction_timeout_s * 1000)
        self._kafka = kafka
        self._config = config
        self._renames = dict(renames or {})
        self._transactional = transactional_id is not None
        self._producer = self._new_producer()
        self._polling: threading.Thread | None = None
        self._closed = threading.Event()
        self._sent = threading.Event()  # records handed over: the poll thread has work
        self._doomed = threading.Event()
        self._unanswered: weakref.WeakSet[Acks] = weakref.WeakSet()

    async def send(self, records: Sequence[OutRecord]) -> None:
        """All of `records` acked, or InfraError: for records with no DLQ to fall back on."""
        refused = await self.offer(records)
        if refused:
            raise InfraError(f"{len(refused)} records refused: {list(refused.values())[:3]}")

    async def offer(self, records: Sequence[OutRecord]) -> dict[int, EventRejected]:
        """Sends `records` and waits for their acks: see Submitted.refused."""
        return await (await self.submit(records)).refused()

    async def submit(self, records: Sequence[OutRecord]) -> Submitted:
        """Hands `records` to librdkafka, in order, and returns without waiting for acks."""
        self._start_polling()
        acks = self._acks(len(records))
        submitted = Submitted(self, records, acks)
        for index, record in enumerate(records):
            while True:
                try:
                    rejected = self._produce(
                        record, lambda e, m, i=index: acks.on_delivery(i, e, m)
                    )
                    break
                except BufferError:  # librdkafka's queue is full: its acks will drain it
                    self._sent.set()
                    await asyncio.sleep(0.005)
            if rejected is not None:
                submitted.refused_early[index] = rejected
                acks.cancel_one()
        self._sent.set()  # after the records: the poll thread finds them waiting
        return submitted

    async def send_alone(self, record: OutRecord) -> EventRejected | None:
        """`record` in a request of its own: None once acked, or why Kafka refused it."""
        self._start_polling()
        acks = self._acks(1)
        rejected = self._produce(record, lambda e, m: acks.on_delivery(0, e, m))
        if rejected is not None:
            return rejected
        self._sent.set()
        await acks.all_answered(self.ack_timeout_s)
        error = acks.refusals.get(0)
        return None if error is None else self._refusal(record, error, "the broker")

    def _new_producer(self) -> Producer:
        return make_producer(self._kafka, **self._config)

    @property
    def producer(self) -> Producer:
        return self._producer

    def doomed(self) -> bool:
        """Whether a record of the open transaction went unanswered past the ack timeout:
        the transaction cannot commit, and the producer holding it is to be replaced."""
        return self._doomed.is_set()

    def _acks(self, count: int) -> Acks:
        doom = self._doomed.set if self._transactional else None
        acks = Acks(asyncio.get_running_loop(), count, doom)
        self._unanswered.add(acks)  # weakly: gone once its batch and librdkafka let go
        return acks

    def renew(self) -> Producer:
        """Replace the producer by a new one with the same settings (a transactional one whose
        state is unknown after a timeout); returns it."""
        old, self._producer = self._producer, self._new_producer()
        self._doomed.clear()
        old.purge()
        # The old producer's delivery reports are never served (the poll thread serves the
        # new one, and a fenced producer raises when polled): its batches learn here.
        for acks in list(self._unanswered):
            acks.abandon()
        return self._producer

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout_s`), then stop the poll thread."""
        self._closed.set()
        self._sent.set()
        if self._polling is not None:
            self._polling.join(timeout_s)
        self._producer.flush(timeout_s)

    def _start_polling(self) -> None:
        if self._polling is None:
            self._polling = threading.Thread(
                target=self._poll, name="streamproc-producer-acks", daemon=True
            )
            self._polling.start()

    def _poll(self) -> None:
        """Serve delivery callbacks while records await acks; otherwise wait outside
        librdkafka, so an idle sender's thread is never inside the client at teardown."""
        while not self._closed.is_set():
            if len(self._producer) == 0:
                self._sent.wait(0.5)
                self._sent.clear()
                if len(self._producer) == 0:
                    continue
            try:
                self._producer.poll(0.05)
            except KafkaException as exc:  # a fatal error: the thread must live on
                self._lost(exc.args[0])

    def _lost(self, error: Any) -> None:
        """The producer hit a fatal error (confluent-kafka raises it from every poll): it
        will answer no record again. In a transaction, that transaction is abandoned with
        its producer, which the next commit replaces; otherwise its batches fail."""
        if not self._doomed.is_set():
            log.warning("the producer failed for good, its records are abandoned: %s", error.str())
        if self._transactional:
            self._doomed.set()
        for acks in list(self._unanswered):
            acks.abandon()
        self._closed.wait(0.5)  # until the producer is replaced: no busy loop meanwhile

    def _produce(self, record: OutRecord, on_delivery: Any) -> EventRejected | None:
        try:
            self._producer.produce(
                self._renames.get(record.topic, record.topic),
                record.value,
                record.key,
                headers=list(record.headers),
                timestamp=record.timestamp_ms or 0,
                on_delivery=on_delivery,
            )
        except KafkaException as exc:
            error = exc.args[0]
            if self._transactional and _aborts_transaction(error):
                on_delivery(error, None)  # as if reported: the transaction is abandoned
                return None
            rejected = self._refusal(record, error, "the producer")
            if rejected is None:
                raise InfraError(f"{record.topic}: {exc}") from exc
            return rejected
        return None

    def _refusal(self, record: OutRecord, error: Any, by: str) -> EventRejected | None:
        reason = self.REFUSALS.get(error.code())
        if reason is None:
            return None
        limit = f"; the producer's limit is {MAX_RECORD_BYTES:,} bytes"
        return EventRejected(
            reason,
            f"{by} refused a {wire_size(record):,}-byte record for {record.topic} "
            f"({error.name()}{limit if reason == RECORD_TOO_LARGE else ''})",
        )
