"""The commit policies: the offsets they hand over, with and without the Redis state's epoch
as their metadata (a process without Redis state, like the pass-through bench, has none),
and when a transactional worker commits (every interval under load, at once when at rest)."""

from __future__ import annotations

import time
from typing import Any

from streamproc.adapters.kafka.commits import AutoCommits, CommitHooks, TransactionalCommits
from streamproc.adapters.kafka.positions import FetchedBatch, Positions
from streamproc.adapters.kafka.source import BEHIND_AFTER_FULL_FETCHES, Backlog
from streamproc.records import Envelope

TOPIC = "t"


class _StoringConsumer:
    def __init__(self) -> None:
        self.stored: list[Any] = []

    def store_offsets(self, offsets: list[Any]) -> None:
        self.stored.extend(offsets)


def _finished(positions: Positions, offsets: range) -> None:
    records = [Envelope(TOPIC, 0, offset, None, b"") for offset in offsets]
    batch = positions.hand_over(FetchedBatch(TOPIC, records, {0: positions.epoch((TOPIC, 0))}))
    positions.begin(batch)
    positions.finish(batch)


def _stored(epoch: str | None) -> list[tuple[str, int, int, str | None]]:
    positions = Positions()
    positions.assign([(TOPIC, 0)])
    _finished(positions, range(0, 4))
    consumer = _StoringConsumer()
    AutoCommits(positions, 1.0, 1.0, lambda: epoch).tick(consumer)  # type: ignore[arg-type]
    return [(p.topic, p.partition, p.offset, p.metadata) for p in consumer.stored]


def test_offsets_carry_the_state_epoch_as_metadata() -> None:
    assert _stored("epoch-1") == [(TOPIC, 0, 4, "epoch-1")]


def test_offsets_without_an_epoch_are_committed_without_metadata() -> None:
    assert _stored(None) == [(TOPIC, 0, 4, None)]


class _Transactions:
    def __init__(self) -> None:
        self.commits: list[list[tuple[int, int]]] = []

    def commit(self, offsets: list[Any], group: object) -> bool:
        self.commits.append([(p.partition, p.offset) for p in offsets])
        return True


class _Quiet:
    def hold(self) -> None:
        """The fake agents are always quiet."""

    def release(self) -> None:
        """Nothing held."""


class _GroupConsumer:
    def consumer_group_metadata(self) -> object:
        return object()


def _begun(positions: Positions, offsets: range) -> FetchedBatch:
    records = [Envelope(TOPIC, 0, offset, None, b"") for offset in offsets]
    batch = positions.hand_over(FetchedBatch(TOPIC, records, {0: positions.epoch((TOPIC, 0))}))
    positions.begin(batch)
    return batch


HELD: list[float] = []  # how long each commit held the agents, as the metric is told


def _transactional(interval_s: float) -> tuple[Positions, _Transactions, TransactionalCommits]:
    positions, transactions = Positions(), _Transactions()
    positions.assign([(TOPIC, 0)])
    HELD.clear()
    hooks = CommitHooks(held=HELD.append)
    commits = TransactionalCommits(positions, transactions, _Quiet(), interval_s, hooks)  # type: ignore[arg-type]
    return positions, transactions, commits


def test_a_worker_at_rest_commits_its_finished_work_before_the_interval() -> None:
    """Readers see outputs only once committed: a worker with nothing to do commits at once,
    not a whole interval later."""
    positions, transactions, commits = _transactional(interval_s=60)
    consumer = _GroupConsumer()
    time.sleep(0.03)  # past the gap after the (initial) last commit
    batch = _begun(positions, range(0, 3))
    assert commits.poll_timeout(0.1) < 0.1  # busy: tick again soon after the batch ends
    commits.tick(consumer)  # type: ignore[arg-type]
    assert transactions.commits == []  # a batch in processing: not at rest
    positions.finish(batch)
    commits.tick(consumer)  # type: ignore[arg-type]
    assert transactions.commits == [[(0, 3)]]
    assert len(HELD) == 1
    assert commits.poll_timeout(0.1) == 0.1  # idle, nothing to hurry for


def test_a_busy_worker_commits_every_interval() -> None:
    positions, transactions, commits = _transactional(interval_s=0.05)
    consumer = _GroupConsumer()
    time.sleep(0.03)
    done = _begun(positions, range(0, 2))
    positions.finish(done)
    _begun(positions, range(2, 4))  # still in processing
    commits.tick(consumer)  # type: ignore[arg-type]
    assert transactions.commits == []
    time.sleep(0.05)
    commits.tick(consumer)  # type: ignore[arg-type]
    assert transactions.commits == [[(0, 2)]]


def test_a_worker_behind_its_input_commits_once_a_second() -> None:
    """While fetches come back full, commits (which hold the agents) are a second apart:
    throughput counts then, not latency; the short interval returns after the next commit."""
    positions, transactions, commits = _transactional(interval_s=0.05)
    consumer = _GroupConsumer()
    time.sleep(0.06)
    _begun(positions, range(0, 2))  # always busy: only the interval decides
    commits.tick(consumer, behind=True)  # type: ignore[arg-type]
    assert transactions.commits == []
    time.sleep(0.95)
    commits.tick(consumer)  # type: ignore[arg-type]
    assert len(transactions.commits) == 1
    time.sleep(0.06)
    commits.tick(consumer)  # type: ignore[arg-type]
    assert len(transactions.commits) == 2  # noqa: PLR2004


def test_a_worker_behind_its_input_does_not_commit_at_rest() -> None:
    """Between two batches of a backlog the worker is briefly at rest: no commit there."""
    positions, transactions, commits = _transactional(interval_s=0.05)
    consumer = _GroupConsumer()
    time.sleep(0.03)
    positions.finish(_begun(positions, range(0, 2)))  # at rest, with work done
    commits.tick(consumer, behind=True)  # type: ignore[arg-type]
    assert transactions.commits == []


def test_a_burst_is_no_backlog_but_full_fetches_in_a_row_are() -> None:
    """A producer's batch fills one fetch now and then at half load: taken for a backlog, the
    worker's commits waited a second (make bench: p50 1.6 s at 50% load)."""
    backlog = Backlog(batch_size=500)
    assert [backlog.fetched(n) for n in (500, 120, 500, 500, 7)] == [False] * 5
    assert [backlog.fetched(500) for _ in range(BEHIND_AFTER_FULL_FETCHES)][-1] is True
    assert backlog.fetched(499) is False
