"""Adapter: riding through an outage of Redis or Kafka instead of exiting at the first error.

A batch whose call fails with Unavailable is tried again, with capped and jittered backoff,
until the dependency answers or the budget is spent (then InfraError: the worker exits 3 and
its supervisor restarts it). Meanwhile the consumer pauses its partitions (it keeps polling,
so it stays in its group, and fetches nothing it would only have to hold), /readyz says no,
and the outage is logged when it starts and when it ends, and shown in the metrics.

The retried batch is the same batch: every Redis write is guarded by the records' positions,
so a call the server ran before the connection broke changes nothing when it runs again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from streamproc.errors import InfraError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0  # a dependency that is back is noticed within this (plus one call)


class OutageGauge(Protocol):
    """Where an outage shows (the worker's metrics)."""

    def outage(self, dependency: str, active: bool) -> None: ...


class Outages:
    """Which dependencies are out now; shared by the event loop (which retries) and the
    consumer's thread (which pauses while any is out)."""

    def __init__(self, budget_s: float, gauge: OutageGauge | None = None) -> None:
        self.budget_s = budget_s
        self._gauge = gauge
        self._since: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        with self._lock:
            return bool(self._since)

    def current(self) -> dict[str, float]:
        """Dependency -> seconds it has been out."""
        now = time.monotonic()
        with self._lock:
            return {name: now - since for name, since in self._since.items()}

    def reasons(self) -> list[str]:
        """What /readyz says of the outages going on."""
        return [f"{name} unavailable for {s:.0f} s" for name, s in self.current().items()]

    def begin(self, error: Unavailable) -> float:
        """Note a failed call; returns how long the dependency has been out."""
        now = time.monotonic()
        with self._lock:
            since = self._since.setdefault(error.dependency, now)
        if since == now:
            log.error(
                "%s unavailable: %s; retrying for up to %.0f s, partitions paused",
                error.dependency,
                error,
                self.budget_s,
            )
            if self._gauge is not None:
                self._gauge.outage(error.dependency, True)
        return now - since

    def end(self, dependency: str) -> None:
        with self._lock:
            since = self._since.pop(dependency, None)
        if since is not None:
            log.warning("%s back after %.1f s; resuming", dependency, time.monotonic() - since)
            if self._gauge is not None:
                self._gauge.outage(dependency, False)


async def ride_through(call: Callable[[], Awaitable[T]], outages: Outages) -> T:
    """`call()`, tried again while it raises Unavailable, up to the outages' budget."""
    delay = FIRST_DELAY_S
    failed: str | None = None
    while True:
        try:
            result = await call()
        except Unavailable as error:
            failed = error.dependency
            out_s = outages.begin(error)
            if out_s >= outages.budget_s:
                raise InfraError(
                    f"{error.dependency} unavailable for {out_s:.0f} s, past the budget "
                    f"(STREAMPROC_OUTAGE_BUDGET_S={outages.budget_s:g}): {error}"
                ) from error
            await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter only
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if failed is not None:
            outages.end(failed)
        return result
