"""Adapter: exactly-once outputs. Every output and dead letter a worker sends between two commits
belongs to one Kafka transaction, and the input offsets of the batches that made them are
committed in it (send_offsets_to_transaction): outputs and progress become visible together,
or not at all. Consumers of our topics read `read_committed` (librdkafka's default).

A commit needs a quiet moment: no batch may be between its first output and its last ack,
or the transaction would hold outputs whose input offsets it does not commit. The gate gives
it one: the agents begin no batch while it is closed, and it closes only once every begun
batch has finished.

Everything that touches the consumer runs in the consumer's thread (see source.py): the
commit is driven from there, and the gate is closed and opened on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from streamproc.errors import InfraError

log = logging.getLogger(__name__)

_STUCK_MARGIN_S = 2.0  # past its own timeout, how long a transactional call may take
# A commit comes only once every batch of its transaction is acked, so it has nothing left to
# flush: a healthy one takes milliseconds. One slower than this meets a broker in trouble, and
# is given up (its batches are processed again) rather than waited for.
_COMMIT_TIMEOUT_S = 5.0
_FENCED = (
    KafkaError._FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.PRODUCER_FENCED,
)


class TransactionGate:
    """On the event loop: the agents `enter` before they begin a batch and `leave` once it is
    finished; `close` waits until none is inside and lets none in until `open`."""

    def __init__(self) -> None:
        self._inside = 0
        self._open = asyncio.Event()
        self._open.set()
        self._empty = asyncio.Event()
        self._empty.set()

    async def enter(self) -> None:
        while not self._open.is_set():
            await self._open.wait()
        self._inside += 1
        self._empty.clear()

    def leave(self) -> None:
        self._inside -= 1
        if self._inside == 0:
            self._empty.set()

    async def close(self) -> None:
        self._open.clear()
        await self._empty.wait()

    def open(self) -> None:
        self._open.set()


class QuietMoment:
    """The gate seen from the consumer's thread: `hold()` returns once the agents are quiet
    (or raises InfraError after `timeout_s`), `release()` lets them go on."""

    def __init__(
        self, gate: TransactionGate, loop: asyncio.AbstractEventLoop, timeout_s: float
    ) -> None:
        self._gate = gate
        self._loop = loop
        self._timeout_s = timeout_s

    def hold(self) -> None:
        closing = asyncio.run_coroutine_threadsafe(self._gate.close(), self._loop)
        try:
            closing.result(self._timeout_s)
        except TimeoutError:
            closing.cancel()
            self.release()
            raise InfraError(
                f"batches still unfinished after {self._timeout_s:.0f} s: cannot commit"
            ) from None

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._gate.open)


class Transactions:
    """The transactional producer's life: init (fencing any earlier producer with the same
    transactional.id, whose open transaction is aborted), then commit after commit.

    `commit` returns False when the transaction was aborted instead: the caller rewinds its
    partitions to their committed offsets, so the aborted batches are processed again (the
    Redis guard makes that a no-op for the state; their outputs are sent again).
    """

    def __init__(
        self,
        producer: Any,
        timeout_s: float,
        renew: Callable[[], Any],
        retry_budget_s: float = 60.0,
        doomed: Callable[[], bool] = lambda: False,
    ) -> None:
        """`doomed()`: a record of the open transaction went unanswered; it is not committed
        but abandoned with its producer."""
        self._producer = producer
        self._doomed = doomed
        self._timeout_s = timeout_s
        self._renew = renew  # a fresh producer with the same transactional.id
        self._retry_budget_s = retry_budget_s
        self._open = False

    def start(self) -> None:
        """Fence earlier producers of this transactional.id, then begin the first transaction."""
        self._init()
        self._begin()

    def commit(self, offsets: list[KafkaPartition], group_metadata: Any) -> bool:
        """Commit what was sent since the last commit, with `offsets` (next to read per
        input partition) for the consumer group; then begin the next transaction."""
        try:
            if self._doomed():
                raise _Stuck("a record of the transaction failed or was not acked in time")
            if offsets:
                self._call(
                    lambda timeout_s: self._producer.send_offsets_to_transaction(
                        offsets, group_metadata, timeout_s
                    ),
                    "send offsets",
                    _COMMIT_TIMEOUT_S,
                )
            self._call(self._producer.commit_transaction, "commit", _COMMIT_TIMEOUT_S)
        except _Stuck as stuck:
            log.warning("%s; its batches are processed again", stuck)
            self._reinitialise()  # the stuck producer cannot even abort
            self._begin()
            return False
        except _Abort as abort:
            log.warning("transaction aborted, its batches are processed again: %s", abort)
            self._abort()
            self._begin()
            return False
        self._begin()
        return True

    def abort_and_begin(self) -> None:
        """Drop what was sent since the last commit, and begin again."""
        self._abort()
        self._begin()

    def close(self) -> None:
        """Abort what is open (a stop commits first; this is for a failure)."""
        if self._open:
            try:
                self._producer.abort_transaction(_COMMIT_TIMEOUT_S)
            except KafkaException as exc:
                log.warning("could not abort the open transaction: %s", exc)
            self._open = False

    def _begin(self) -> None:
        self._producer.begin_transaction()
        self._open = True

    def _abort(self) -> None:
        if self._doomed():  # its unanswered records are abandoned with their producer
            self._reinitialise()
            return
        try:
            self._bounded(self._producer.abort_transaction, "abort", _COMMIT_TIMEOUT_S)
        except (KafkaException, _Stuck):
            self._reinitialise()

    def _reinitialise(self) -> None:
        """Kafka 3.9 has no KIP-890: after a timed-out commit the producer's state is not
        known, so a new producer with the same transactional.id fences it and aborts what
        it left open."""
        log.warning("re-initialising the transactional producer")
        self._producer = self._renew()
        self._init()
        self._open = False

    def _init(self) -> None:
        self._call(self._producer.init_transactions, "init", self._timeout_s)

    def _call(self, call: Callable[[float], None], what: str, timeout_s: float) -> None:
        """Run a transactional call; retriable errors are retried with capped, jittered
        backoff within the budget; an error that needs an abort raises _Abort; a fatal
        one (this producer was fenced: another worker took its transactional.id) or one
        past the budget raises InfraError."""
        deadline = time.monotonic() + self._retry_budget_s
        delay = 0.1
        while True:
            try:
                self._bounded(call, what, timeout_s)
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() in _FENCED and what != "init":
                    # Kafka < 4.0 (no KIP-890): a transaction that timed out while the broker
                    # was away bumps the producer's epoch, and the producer finds itself
                    # fenced. A new producer with the same id takes over; a true zombie
                    # (another worker with this worker's id) would fence it in turn.
                    raise _Stuck(f"Kafka transaction {what}: {error.str()}") from exc
                if error.fatal():
                    raise InfraError(f"Kafka transaction {what}: {error.str()}") from exc
                if error.txn_requires_abort():
                    raise _Abort(error.str()) from exc
                if not error.retriable() or time.monotonic() + delay > deadline:
                    if what == "init":
                        raise InfraError(f"Kafka transaction {what}: {error.str()}") from exc
                    raise _Abort(error.str()) from exc
                log.warning("Kafka transaction %s: %s; retrying", what, error.str())
                time.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter only
                delay = min(delay * 2, 5.0)

    def _bounded(self, call: Callable[[float], None], what: str, timeout_s: float) -> None:
        """`call(timeout_s)` in a thread of its own, given that and a margin: librdkafka's
        send_offsets_to_transaction can block past its timeout when the group coordinator
        went down (librdkafka issues 5456, 5511). Past that, _Stuck: the producer is
        replaced, and the stuck thread is left to itself."""
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                call(timeout_s)
                outcome.append(None)
            except BaseException as exc:  # handed over to the caller's thread
                outcome.append(exc)

        thread = threading.Thread(target=run, name=f"streamproc-txn-{what}", daemon=True)
        thread.start()
        thread.join(timeout_s + _STUCK_MARGIN_S)
        if not outcome:
            raise _Stuck(f"Kafka transaction {what} did not return in {timeout_s:.0f} s")
        if outcome[0] is not None:
            raise outcome[0]


class _Abort(Exception):
    """The transaction cannot commit: abort it and process its batches again."""


class _Stuck(_Abort):
    """A transactional call did not return: the producer is replaced, not asked to abort."""
