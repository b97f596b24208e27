"""Worker: what the followers of a compacted topic share (the model snapshots, the erasures):
read it to its end, then again every interval, riding through a broker outage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from streamproc.adapters.outage import Outages, ride_through

T = TypeVar("T")


class Closable(Protocol):
    """A topic's client, closed when its follower stops."""

    def close(self) -> None: ...


class TopicFollower:
    """`ready` is set once the topic has been read to its end; subclasses say what a read is
    (`poll`), each blocking read going through `_read`."""

    def __init__(self, topic: Closable, outages: Outages) -> None:
        self._topic = topic
        self._outages = outages
        self._reading: asyncio.Future[object] | None = None
        self.ready = asyncio.Event()

    async def poll(self) -> None:
        """One read of what is new, applied (a subclass's own)."""
        raise NotImplementedError

    async def follow(self, interval_s: float) -> None:
        """Until cancelled (the worker stops); then the topic's consumer is closed."""
        try:
            while True:
                await ride_through(self.poll, self._outages)
                self.ready.set()
                await asyncio.sleep(interval_s)
        finally:
            # Cancelled, a read goes on in its thread: the consumer is closed after it.
            if self._reading is not None:
                await asyncio.wait([self._reading])
            await asyncio.to_thread(self._topic.close)

    async def _read(self, read: Callable[[], T]) -> T:
        """`read()` in a thread; a cancelled follower waits for it before closing."""
        reading: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(read))
        self._reading = reading  # type: ignore[assignment]
        return await asyncio.shield(reading)
