"""Adapter: how one agent walks its batches: each is processed in turn (in fetch order, so per-key
order and the feature state's order hold), and its outputs' acks are awaited beside, in
order, while the next batches are processed. Only a batch whose outputs are all acked is
finished (its offsets may be committed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import NoReturn

from streamproc.adapters.kafka.positions import FetchedBatch, Positions
from streamproc.adapters.kafka.transactions import TransactionGate
from streamproc.records import Envelope

Complete = Callable[[], Awaitable[None]]  # waits for a batch's acks, then counts it
Process = Callable[[list[Envelope]], Awaitable[Complete]]  # processes and sends a batch


class BatchFlow:
    """Processes batches one at a time, with up to `in_flight` of them between the start of
    their processing and their last ack (1: each batch waits for its acks before the next).

    `fail` is called with any exception and must not return: an agent that raises dies
    quietly in Faust, and a batch it dropped would otherwise look finished.

    With a `gate` (exactly-once delivery), each batch enters it before it begins and leaves
    once finished, so a commit can wait for a moment when no batch is half sent.
    """

    def __init__(
        self,
        positions: Positions,
        process: Process,
        in_flight: int,
        fail: Callable[[BaseException], NoReturn],
        gate: TransactionGate | None = None,
    ) -> None:
        self._positions = positions
        self._gate = gate
        self._process = process
        self._in_flight = in_flight
        self._fail = fail

    async def run(self, batches: AsyncIterable[FetchedBatch]) -> None:
        waiting: asyncio.Queue[tuple[FetchedBatch, Complete | None]] = asyncio.Queue()
        room = asyncio.Semaphore(self._in_flight)
        acks = asyncio.ensure_future(self._finish_in_order(waiting, room))
        try:
            async for batch in batches:
                await room.acquire()
                if self._gate is not None:
                    await self._gate.enter()
                records = self._positions.begin(batch)
                complete = await self._process(records) if records else None
                await waiting.put((batch, complete))
        except asyncio.CancelledError:
            acks.cancel()
            raise
        except Exception as exc:
            self._fail(exc)

    async def _finish_in_order(
        self,
        waiting: asyncio.Queue[tuple[FetchedBatch, Complete | None]],
        room: asyncio.Semaphore,
    ) -> None:
        try:
            while True:
                batch, complete = await waiting.get()
                if complete is not None:
                    await complete()
                self._positions.finish(batch)
                if self._gate is not None:
                    self._gate.leave()
                room.release()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)
