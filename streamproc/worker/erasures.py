"""Worker: the erasure follower that keeps a worker's erased set up to date."""

from __future__ import annotations

import asyncio

from streamproc.adapters.kafka.erasures import ErasureTopic
from streamproc.adapters.metrics import StageMetrics
from streamproc.adapters.outage import Outages, ride_through


class ErasureFollower:
    """Adds the pseudonyms recorded on the erasure topic to `erased`, the set the clean stage
    and the feature step consult. `ready` is set once the topic has been read to its end: a
    worker reads no record before, so a replay never meets a subject it has not heard of."""

    def __init__(
        self,
        topic: ErasureTopic,
        erased: set[str],
        metrics: StageMetrics,
        outages: Outages | None = None,
    ) -> None:
        """A read that fails while the broker is out is tried again (`outages`' budget)."""
        self._topic = topic
        self._outages = outages or Outages(budget_s=120, gauge=metrics)
        self._erased = erased
        self._metrics = metrics
        self._reading: asyncio.Future[set[str]] | None = None
        self.ready = asyncio.Event()

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

    async def poll(self) -> None:
        # Updated here, in the loop's thread: the stages read the set between two batches.
        self._reading = asyncio.ensure_future(asyncio.to_thread(self._topic.read_new))
        self._erased.update(await asyncio.shield(self._reading))
        self._metrics.erased_subjects.set(len(self._erased))
