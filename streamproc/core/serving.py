"""Core: which deployment version serves, and from which event on.

`streamproc promote v2` names the serving version in one Redis hash (the pointer) that every
worker reads with each batch and the read path with each read. The switch of the predictions
topic is cut at a log time a few seconds after the promotion (`cutover_ms`): an event the log
took before it is served by the previous version, any later one by the new. Both versions read
the same raw log, with the same Kafka timestamps, so they agree on every event whatever their
positions: the serving topic gets each prediction once, with no gap, while both run. A worker
reads the pointer after fetching its batch; an event logged after the cutover was logged
after the pointer was written, so no worker decides on an older pointer (the delay covers the
clocks of the promoting host and of the brokers drifting apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from streamproc.config.deployment import BASE_VERSION

# How far after the promotion the predictions topic switches: more than the clocks of the
# promoting host and of the brokers may drift apart.
CUTOVER_DELAY_MS = 5_000


@dataclass(frozen=True, slots=True)
class Serving:
    """The pointer's content. Without one, v1 serves."""

    version: str = BASE_VERSION
    previous: str = ""  # the version served before (rollback returns to it); "" for none
    cutover_ms: int = 0  # log time from which `version` serves the predictions topic
    promoted_at_ms: int = 0
    retire_at_ms: int = 0  # when the previous version's namespace may be dropped; 0: never
    retired: str = ""  # a version whose namespace was dropped (it can serve no more)

    def serves(self, version: str, logged_at_ms: int | None) -> bool:
        """Whether `version` serves the event the log took at `logged_at_ms`."""
        if logged_at_ms is None or not self.previous or logged_at_ms >= self.cutover_ms:
            return version == self.version
        return version == self.previous

    def retire_due(self, now_ms: int) -> str | None:
        """The previous version, once its grace period is over and it is not dropped yet."""
        if self.previous and self.retire_at_ms and now_ms >= self.retire_at_ms:
            return None if self.retired == self.previous else self.previous
        return None

    def promoted(self, version: str, now_ms: int, grace_ms: int) -> Serving:
        """The pointer after `version` is promoted at `now_ms`."""
        return Serving(
            version=version,
            previous=self.version,
            cutover_ms=now_ms + CUTOVER_DELAY_MS,
            promoted_at_ms=now_ms,
            retire_at_ms=now_ms + grace_ms,
            retired=self.retired if self.retired != version else "",
        )


class ServingPointer(Protocol):
    """Where the pointer is kept (Redis; in memory for tests and files)."""

    async def read(self) -> Serving: ...
