"""Adapter: which input offsets a worker may commit, while several batches are in flight and
partitions come and go in rebalances. Pure bookkeeping, shared by two threads: the consumer's
(assigns, revokes, stores offsets) and the event loop's (begins and finishes batches).

The rules it keeps:
- a batch's offsets become committable only once the batch is finished (its outputs acked),
  and batches of one partition finish in the order they were fetched;
- a record fetched under an earlier assignment of its partition is dropped, not processed:
  after a revoke the partition's new owner reads it again from the committed offset;
- a revoke waits for the begun batches of the revoked partitions, so their offsets are
  committed before the partition moves (nothing processed twice); a lost partition is
  forgotten at once, and nothing of it is committed (its new owner may already read it).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streamproc.records import Envelope

Partition = tuple[str, int]  # (topic, partition)


@dataclass(slots=True)
class FetchedBatch:
    """Records of one topic from one fetch, with the assignment each partition had then."""

    topic: str
    records: list[Envelope]
    epochs: dict[int, int]  # partition -> assignment epoch at fetch time
    number: int = 0
    begun: list[Envelope] = field(default_factory=list)  # what begin() kept


class Positions:
    """Thread-safe offsets bookkeeping; see the module docstring for the rules."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._epoch = itertools.count(1)
        self._owned: dict[Partition, int] = {}
        self._revoking: set[Partition] = set()
        self._begun: dict[int, set[Partition]] = {}  # batch number -> its partitions
        self._numbers = itertools.count(1)
        self._queued = 0  # handed over, not begun
        self._committable: dict[Partition, int] = {}  # next offset to read, not yet stored

    # --- the consumer's thread -------------------------------------------------------

    def assign(self, partitions: Iterable[Partition]) -> None:
        with self._changed:
            for partition in partitions:
                self._owned[partition] = next(self._epoch)
                self._revoking.discard(partition)

    def owned(self) -> list[Partition]:
        with self._changed:
            return list(self._owned)

    def epoch(self, partition: Partition) -> int:
        """The current assignment's epoch of `partition` (0: not owned)."""
        with self._changed:
            return self._owned.get(partition, 0)

    def hand_over(self, batch: FetchedBatch) -> FetchedBatch:
        """Count `batch` as queued until it is begun; numbers it."""
        with self._changed:
            self._queued += 1
            batch.number = next(self._numbers)
        return batch

    def wait_for_room(self, limit: int, timeout_s: float) -> bool:
        """Whether fewer than `limit` batches wait to be begun, waiting up to `timeout_s`.

        The consumer cuts the next batch only when an agent is about to take it: records that
        arrive meanwhile wait in librdkafka's queue and make the next batch bigger, instead of
        queueing as many small batches (each costs its round trips to Redis and Kafka).
        """
        with self._changed:
            return self._changed.wait_for(lambda: self._queued < limit, timeout_s)

    def at_rest(self) -> bool:
        """Nothing queued or in processing, and finished work not yet committed."""
        with self._changed:
            idle = self._queued == 0 and not self._begun
            return idle and any(p in self._owned for p in self._committable)

    def busy(self) -> bool:
        """Batches queued or in processing."""
        with self._changed:
            return self._queued > 0 or bool(self._begun)

    def take_committable(self) -> dict[Partition, int]:
        """The next offset to read of each owned partition with finished work to store."""
        with self._changed:
            ready = {p: o for p, o in self._committable.items() if p in self._owned}
            self._committable.clear()
            return ready

    def revoke(self, partitions: Sequence[Partition], timeout_s: float) -> dict[Partition, int]:
        """Stop beginning batches of `partitions`, wait up to `timeout_s` for their begun
        batches to finish, forget them; returns their offsets to commit now. Partitions
        whose batches did not finish in time return nothing (the new owner reads them
        again: at least once, never lost)."""
        revoked = set(partitions)
        with self._changed:
            self._revoking |= revoked
            finished = self._changed.wait_for(lambda: not self._busy(revoked), timeout_s)
            busy = self._busy(revoked) if not finished else set()
            offsets = {p: o for p, o in self._committable.items() if p in revoked - busy}
            self._forget(revoked)
            return offsets

    def lose(self, partitions: Sequence[Partition]) -> None:
        """Partitions taken away without a revoke: nothing of them may be committed."""
        with self._changed:
            self._forget(set(partitions))

    def drain(self, timeout_s: float) -> bool:
        """Stop beginning any batch; whether all begun ones finished within `timeout_s`."""
        with self._changed:
            self._revoking |= set(self._owned)
            return self._changed.wait_for(lambda: not self._begun, timeout_s)

    # --- the event loop ---------------------------------------------------------------

    def begin(self, batch: FetchedBatch) -> list[Envelope]:
        """The records of `batch` still to process: those of partitions owned under the
        same assignment as at fetch time, and not being revoked."""
        with self._changed:
            live = {
                partition
                for partition, epoch in batch.epochs.items()
                if (batch.topic, partition) not in self._revoking
                and self._owned.get((batch.topic, partition)) == epoch
            }
            batch.begun = [r for r in batch.records if r.partition in live]
            self._begun[batch.number] = {(batch.topic, p) for p in live}
            self._queued -= 1
            self._changed.notify_all()
            return batch.begun

    def finish(self, batch: FetchedBatch) -> None:
        """`batch`'s outputs are acked: its offsets may be committed (if its partitions are
        still owned under the same assignment)."""
        with self._changed:
            self._begun.pop(batch.number, None)
            for record in batch.begun:
                partition = (batch.topic, record.partition)
                if self._owned.get(partition) == batch.epochs[record.partition]:
                    offset = max(self._committable.get(partition, 0), record.offset + 1)
                    self._committable[partition] = offset
            self._changed.notify_all()

    # --- both -------------------------------------------------------------------------

    def _busy(self, partitions: set[Partition]) -> set[Partition]:
        return {p for begun in self._begun.values() for p in begun & partitions}

    def _forget(self, partitions: set[Partition]) -> None:
        for partition in partitions:
            self._owned.pop(partition, None)
            self._revoking.discard(partition)
            self._committable.pop(partition, None)
        self._changed.notify_all()
