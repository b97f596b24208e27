"""Worker: what the worker knows about its own health, checked every batch and shown on
/readyz: a dependency out (ridden through), Redis state lost (degraded), models not yet
restored or erasures not yet read, no partitions assigned."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from streamproc.adapters.kafka.lag import Lags
from streamproc.adapters.kafka.retention import RetentionGap
from streamproc.adapters.metrics import StageMetrics
from streamproc.adapters.outage import Outages
from streamproc.adapters.redis.marker import RedisStateMarker

log = logging.getLogger(__name__)


class WorkerState:
    """Shared by the agents (which check the Redis state before each batch), the consumer
    (which pauses during outages) and /readyz."""

    def __init__(
        self,
        outages: Outages,
        metrics: StageMetrics,
        marker: RedisStateMarker | None = None,
        committed_epochs: Callable[[], set[str]] | None = None,
        before_serving: Sequence[tuple[str, asyncio.Event]] = (),
    ) -> None:
        """`committed_epochs`: the Redis state epochs the group's offsets were committed with;
        none tells a namespace's first start (no marker yet, rightly) from a loss.
        `before_serving`: what must be read before the consumer joins its group (the served
        models, the erasures), each with what /readyz says until it is."""
        self.outages = outages
        self.before_serving = list(before_serving)
        self.assigned: Callable[[], int] | None = None  # set by the consumer's owner
        self.metrics = metrics
        self._report_lag = metrics.lag_reporter()  # the consumer's partitions
        self._marker = marker
        self._committed_epochs = committed_epochs
        self._epoch: str | None = None
        self.degraded = ""
        self._processing: dict[int, float] = {}  # batch -> when its processing began
        self._numbers = itertools.count()

    def retention_gap(self, gap: RetentionGap) -> None:
        """Counted (the consumer has logged it)."""
        self.metrics.retention_gap(gap)

    def consumer_lag(self, lags: Lags) -> None:
        self._report_lag(lags)

    @contextmanager
    def processing(self) -> Iterator[None]:
        """Around a batch's processing (not its acks): how long it takes is watched."""
        number = next(self._numbers)
        self._processing[number] = time.monotonic()
        try:
            yield
        finally:
            del self._processing[number]

    def stalled_s(self) -> float:
        """How long the oldest batch in processing has taken, while no dependency is out
        (riding through an outage is no stall); 0 when none is in processing."""
        if not self._processing or self.outages.active:
            return 0.0
        return time.monotonic() - min(self._processing.values())

    async def check(self) -> None:
        """Read the Redis state marker (a round trip): a loss is logged and counted once."""
        if self._marker is None:
            return
        first_start = False
        if self._epoch is None and self._committed_epochs is not None:
            first_start = not await asyncio.to_thread(self._committed_epochs)
        mark = await self._marker.check(first_start=first_start)
        if self._epoch is not None and mark.epoch != self._epoch:
            log.error("Redis state epoch changed (%s -> %s)", self._epoch, mark.epoch)
        self._epoch = mark.epoch
        if mark.degraded and not self.degraded:
            log.error("%s; clear with `streamproc state accept` once rebuilt", mark.degraded)
            self.metrics.redis_state_lost.inc()
        elif self.degraded and not mark.degraded:
            log.warning("Redis state no longer marked degraded")
        self.degraded = mark.degraded
        self.metrics.degraded.set(int(bool(mark.degraded)))

    @property
    def epoch(self) -> str | None:
        """The Redis state's epoch, committed with the offsets (None before the first check)."""
        return self._epoch

    def not_ready(self) -> list[str]:
        """Why the worker is not ready to serve (empty: ready)."""
        reasons = self.outages.reasons()
        if self.degraded:
            reasons.append(self.degraded)
        reasons += [waiting for waiting, ready in self.before_serving if not ready.is_set()]
        if self.assigned is not None and self.assigned() == 0:
            reasons.append("no partitions assigned")
        return reasons
