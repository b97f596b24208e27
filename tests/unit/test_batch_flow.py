"""BatchFlow: batches processed one at a time, acks awaited beside them, finished in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import NoReturn

import pytest

from streamproc.adapters.kafka.batch_flow import BatchFlow, Complete
from streamproc.adapters.kafka.positions import FetchedBatch, Positions
from streamproc.records import Envelope

TOPIC = "t"


class Failed(Exception):
    pass


def _fail(error: BaseException) -> NoReturn:
    raise Failed from error


def _batches(positions: Positions, count: int) -> list[FetchedBatch]:
    positions.assign([(TOPIC, 0)])
    return [
        positions.hand_over(
            FetchedBatch(
                TOPIC, [Envelope(TOPIC, 0, n, None, b"")], {0: positions.epoch((TOPIC, 0))}
            )
        )
        for n in range(count)
    ]


async def _items(batches: list[FetchedBatch]) -> AsyncIterator[FetchedBatch]:
    for batch in batches:
        yield batch


async def test_the_next_batch_is_processed_while_earlier_acks_are_awaited() -> None:
    positions = Positions()
    batches = _batches(positions, 6)
    acks = {n: asyncio.Event() for n in range(6)}
    processed: list[int] = []
    finished: list[int] = []

    async def process(records: list[Envelope]) -> Complete:
        number = records[0].offset
        processed.append(number)

        async def complete() -> None:
            await acks[number].wait()
            finished.append(number)

        return complete

    run = asyncio.ensure_future(BatchFlow(positions, process, 3, _fail).run(_items(batches)))
    await asyncio.sleep(0.05)
    # three batches in flight; the fourth waits for room before it is begun
    assert processed == [0, 1, 2]
    assert finished == [] and positions.take_committable() == {}
    for number in (2, 1):  # acks arrive out of order: batches still finish in order
        acks[number].set()
    await asyncio.sleep(0.05)
    assert finished == []
    acks[0].set()
    await asyncio.sleep(0.05)
    assert finished == [0, 1, 2]
    assert positions.take_committable() == {(TOPIC, 0): 3}
    for event in acks.values():
        event.set()
    await asyncio.wait_for(run, 1)
    await asyncio.sleep(0.05)
    assert finished == [0, 1, 2, 3, 4, 5]
    assert positions.take_committable() == {(TOPIC, 0): 6}


async def test_a_failing_batch_fails_the_flow_and_is_not_finished() -> None:
    positions = Positions()
    batches = _batches(positions, 2)

    async def process(records: list[Envelope]) -> Complete:
        if records[0].offset == 1:
            raise RuntimeError("Redis went away")

        async def complete() -> None:
            return None

        return complete

    with pytest.raises(Failed):
        await BatchFlow(positions, process, 2, _fail).run(_items(batches))
    await asyncio.sleep(0.05)
    assert positions.take_committable() == {(TOPIC, 0): 1}  # the first, not the failed one


async def test_a_failing_ack_fails_the_flow() -> None:
    positions = Positions()
    batches = _batches(positions, 1)
    failures: list[BaseException] = []
    done = asyncio.Event()

    def fail(error: BaseException) -> NoReturn:
        failures.append(error)
        done.set()
        raise asyncio.CancelledError

    async def process(records: list[Envelope]) -> Complete:
        async def complete() -> None:
            raise RuntimeError("not acked")

        return complete

    await BatchFlow(positions, process, 2, fail).run(_items(batches))
    await asyncio.wait_for(done.wait(), 1)
    assert [str(e) for e in failures] == ["not acked"]
    assert positions.take_committable() == {}
