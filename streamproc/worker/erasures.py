"""Worker: the erasure follower that keeps a worker's erased set up to date."""

from __future__ import annotations

from streamproc.adapters.kafka.erasures import ErasureTopic
from streamproc.adapters.metrics import StageMetrics
from streamproc.adapters.outage import Outages
from streamproc.worker.following import TopicFollower


class ErasureFollower(TopicFollower):
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
        super().__init__(topic, outages or Outages(budget_s=120, gauge=metrics))
        self._erasures = topic
        self._erased = erased
        self._metrics = metrics

    async def poll(self) -> None:
        # Updated here, in the loop's thread: the stages read the set between two batches.
        self._erased.update(await self._read(self._erasures.read_new))
        self._metrics.erased_subjects.set(len(self._erased))
