"""Worker: drop the previous version's namespace once its grace period after a promotion is
over. Every worker of the serving version looks now and then; the first to see it due drops
the keys and marks the version retired (its workers then stop: stages/serving_route.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from streamproc.adapters.redis.serving import PointerMoved, RedisServingPointer, RedisVersions
from streamproc.errors import InfraError

log = logging.getLogger(__name__)


class Retirement:
    """What the workers of one version do to retire the version served before it."""

    def __init__(self, pointer: RedisServingPointer, versions: RedisVersions, version: str) -> None:
        self._pointer = pointer
        self._versions = versions
        self._version = version

    async def run(self, interval_s: float) -> None:
        """Until cancelled; a failed attempt is tried again at the next look."""
        while True:
            try:
                await self.retire_due()
            except InfraError as exc:
                log.warning("retiring the previous version failed, tried again later: %s", exc)
            await asyncio.sleep(interval_s)

    async def retire_due(self) -> str | None:
        """The version whose namespace was dropped now, if any. It is marked retired first
        (no rollback may return to it from then on), then dropped: a drop cut short is
        finished at the next look, as long as the version is still listed."""
        serving = await self._pointer.read()
        if serving.version != self._version:
            return None
        due = serving.retire_due(int(time.time() * 1000))
        if due is not None:
            try:
                await self._pointer.replace(serving, replace(serving, retired=due))
            except PointerMoved:  # promoted or rolled back meanwhile: that pointer decides
                return None
        target = due or serving.retired
        if not target or await self._versions.about(target) is None:
            return None
        dropped = await self._versions.drop(target)
        log.warning(
            "version %s retired (its grace period after %s was promoted is over): its %d "
            "Redis keys dropped",
            target,
            serving.version,
            dropped,
        )
        return target
