"""The transactional producer's driver against a fake producer: what a commit does when Kafka
answers with each kind of error, and when records of the transaction went unanswered."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamproc.adapters.kafka import transactions
from streamproc.adapters.kafka.producer import Acks
from streamproc.adapters.kafka.transactions import Transactions
from streamproc.errors import InfraError


@dataclass
class FakeProducer:
    """Records the transactional calls; `fail` maps a call's name to the errors it raises,
    one per call, before it succeeds."""

    name: str
    calls: list[str] = field(default_factory=list)
    fail: dict[str, list[KafkaError]] = field(default_factory=dict)
    hang_until: threading.Event | None = None  # send_offsets blocks until it is set

    def _call(self, what: str) -> None:
        self.calls.append(what)
        errors = self.fail.get(what)
        if errors:
            raise KafkaException(errors.pop(0))

    def init_transactions(self, timeout: float) -> None:
        self._call("init")

    def begin_transaction(self) -> None:
        self._call("begin")

    def send_offsets_to_transaction(self, offsets: Any, metadata: Any, timeout: float) -> None:
        if self.hang_until is not None:
            self.hang_until.wait(10)
        self._call("send_offsets")

    def commit_transaction(self, timeout: float) -> None:
        self._call("commit")

    def abort_transaction(self, timeout: float) -> None:
        self._call("abort")


class Producers:
    """The first producer, and each one `renew` made since."""

    def __init__(self) -> None:
        self.made = [FakeProducer("first")]
        self.doomed = False

    def renew(self) -> FakeProducer:
        self.doomed = False
        self.made.append(FakeProducer(f"renewed-{len(self.made)}"))
        return self.made[-1]


def driver(producers: Producers) -> Transactions:
    found = Transactions(
        producers.made[0], 1.0, producers.renew, 1.0, doomed=lambda: producers.doomed
    )
    found.start()
    return found


OFFSETS: list[Any] = [object()]


def test_a_commit_sends_the_offsets_then_commits_and_begins_the_next() -> None:
    producers = Producers()
    assert driver(producers).commit(OFFSETS, None)
    assert producers.made[0].calls == ["init", "begin", "send_offsets", "commit", "begin"]


def test_an_abortable_error_aborts_and_begins_again_on_the_same_producer() -> None:
    producers = Producers()
    producers.made[0].fail["commit"] = [KafkaError(KafkaError._TIMED_OUT, txn_requires_abort=True)]
    assert not driver(producers).commit(OFFSETS, None)
    assert producers.made[0].calls[-3:] == ["commit", "abort", "begin"]
    assert len(producers.made) == 1


def test_a_retriable_error_is_retried() -> None:
    producers = Producers()
    producers.made[0].fail["send_offsets"] = [
        KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE, retriable=True)
    ]
    assert driver(producers).commit(OFFSETS, None)
    assert producers.made[0].calls.count("send_offsets") == 2


def test_a_producer_fenced_after_its_transaction_timed_out_is_replaced() -> None:
    """Kafka < 4.0: the broker bumped the epoch of a transaction that timed out meanwhile."""
    producers = Producers()
    producers.made[0].fail["commit"] = [KafkaError(KafkaError._FENCED, fatal=True)]
    found = driver(producers)
    assert not found.commit(OFFSETS, None)
    assert [p.calls for p in producers.made[1:]] == [["init", "begin"]]
    assert found.commit(OFFSETS, None)
    assert producers.made[1].calls[-2:] == ["commit", "begin"]


def test_an_abort_that_fails_replaces_the_producer() -> None:
    producers = Producers()
    producers.made[0].fail["commit"] = [KafkaError(KafkaError._TIMED_OUT, txn_requires_abort=True)]
    producers.made[0].fail["abort"] = [KafkaError(KafkaError._FENCED, fatal=True)]
    assert not driver(producers).commit(OFFSETS, None)
    assert producers.made[1].calls == ["init", "begin"]


def test_a_transaction_with_unanswered_records_is_abandoned_with_its_producer() -> None:
    """Its commit would wait for records librdkafka may never answer: the producer is
    replaced (its records purged), and nothing of the transaction is committed."""
    producers = Producers()
    found = driver(producers)
    producers.doomed = True
    assert not found.commit(OFFSETS, None)
    assert "commit" not in producers.made[0].calls
    assert "send_offsets" not in producers.made[0].calls
    assert producers.made[1].calls == ["init", "begin"]
    assert found.commit(OFFSETS, None)


def test_a_doomed_transaction_of_lost_partitions_is_abandoned_too() -> None:
    producers = Producers()
    found = driver(producers)
    producers.doomed = True
    found.abort_and_begin()
    assert "abort" not in producers.made[0].calls
    assert producers.made[1].calls == ["init", "begin"]


def test_a_call_that_never_returns_is_abandoned_and_the_producer_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """librdkafka issues 5456, 5511: send_offsets_to_transaction can block past its timeout."""
    monkeypatch.setattr(transactions, "_STUCK_MARGIN_S", 0.1)
    monkeypatch.setattr(transactions, "_COMMIT_TIMEOUT_S", 0.1)
    producers = Producers()
    found = driver(producers)
    returns = threading.Event()
    producers.made[0].hang_until = returns
    try:
        assert not found.commit(OFFSETS, None)
        assert producers.made[1].calls == ["init", "begin"]
        assert "commit" not in producers.made[0].calls
    finally:
        returns.set()


def test_a_fatal_error_at_init_is_an_infra_error() -> None:
    producers = Producers()
    producers.made[0].fail["init"] = [KafkaError(KafkaError._FENCED, fatal=True)]
    with pytest.raises(InfraError, match="init"):
        driver(producers)


async def test_records_unanswered_in_a_transaction_doom_it_instead_of_failing_the_batch() -> None:
    doomed: list[bool] = []
    acks = Acks(asyncio.get_running_loop(), 2, doom=lambda: doomed.append(True))
    await acks.all_answered(-29.9)  # the margin of 30 s is the acks' own: waits 0.1 s
    assert doomed == [True]


async def test_records_unanswered_outside_a_transaction_fail_the_batch() -> None:
    acks = Acks(asyncio.get_running_loop(), 2)
    with pytest.raises(InfraError, match="not acked"):
        await acks.all_answered(-29.9)


async def test_records_of_a_replaced_transactional_producer_end_their_batch_unfailed() -> None:
    """The transaction they belonged to is over (a new producer with the same id aborted
    it): the batch is processed again after the rewind, so it must not fail the worker."""
    doomed: list[bool] = []
    acks = Acks(asyncio.get_running_loop(), 3, doom=lambda: doomed.append(True))
    acks.abandon()
    await acks.all_answered(60)
    assert acks.failures == [] and doomed == []


class _Refused:
    """A delivery error as librdkafka reports it."""

    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code

    def retriable(self) -> bool:
        return False

    def fatal(self) -> bool:
        return False

    def txn_requires_abort(self) -> bool:
        return False


class _Message:
    def topic(self) -> str:
        return "shop.order.clean.v1"


async def test_a_record_of_a_transaction_that_timed_out_dooms_it_and_not_the_batch() -> None:
    """Its commit cannot succeed: it is abandoned at once, not tried (a send_offsets into a
    failed transaction can block: librdkafka issues 5456, 5511)."""
    doomed: list[bool] = []
    acks = Acks(asyncio.get_running_loop(), 2, doom=lambda: doomed.append(True))
    acks.on_delivery(0, None, _Message())
    acks.on_delivery(1, _Refused(KafkaError._MSG_TIMED_OUT), _Message())
    await acks.all_answered(60)
    assert doomed == [True] and acks.failures == []


async def test_a_record_that_timed_out_outside_a_transaction_fails_its_batch() -> None:
    acks = Acks(asyncio.get_running_loop(), 1)
    acks.on_delivery(0, _Refused(KafkaError._MSG_TIMED_OUT), _Message())
    with pytest.raises(InfraError, match="1 records not acked"):
        await acks.all_answered(60)
