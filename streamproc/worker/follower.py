"""Worker: the snapshot follower that hot-swaps what a worker serves."""

from __future__ import annotations

from dataclasses import replace

from streamproc.adapters.kafka.model_snapshots import (
    ChampionChoice,
    champion_key,
    ranked,
    read_latest,
    serving_key,
)
from streamproc.adapters.kafka.snapshots import SnapshotLog
from streamproc.adapters.metrics import StageMetrics
from streamproc.adapters.outage import Outages
from streamproc.core.training import load_served_model, read_header
from streamproc.stages.predict import PredictStep, ServingModels
from streamproc.worker.following import TopicFollower
from streamproc.worker.snapshot_thread import in_snapshot_thread, release_freed_memory


class SnapshotFollower(TopicFollower):
    """Keeps a worker's PredictStep on the newest snapshot and champion choice."""

    def __init__(
        self,
        pipeline: str,
        topic: SnapshotLog,
        step: PredictStep,
        metrics: StageMetrics,
        outages: Outages | None = None,
    ) -> None:
        """A read that fails while the broker is out is tried again (`outages`' budget)."""
        self._pipeline = pipeline
        super().__init__(topic, outages or Outages(budget_s=120, gauge=metrics))
        self._snapshots = topic
        self._step = step
        self._metrics = metrics
        self.choice: ChampionChoice | None = None
        self._published: bytes | None = None  # the newest serving record

    async def poll(self) -> None:
        if await self._poll():  # the previous models and the snapshot read are freed now
            await in_snapshot_thread(release_freed_memory)

    async def _poll(self) -> bool:
        """Whether other models were swapped in."""
        found = await self._read(lambda: read_latest(self._snapshots, self._pipeline))
        if (data := found.get(champion_key(self._pipeline))) is not None:
            self.choice = ChampionChoice.load(data)
        newest = found.get(serving_key(self._pipeline))
        if newest is not None and (
            self._published is None or ranked(newest) >= ranked(self._published)
        ):
            self._published = newest  # kept whole: the champion may change before the next
        serving = self._step.serving
        if self._published is None:  # untrained, every declared model at hand: pick one
            if self.choice is not None and self.choice.champion in serving.models:
                self._serve(replace(serving, champion=self.choice.champion))
            return False
        header = read_header(self._published)
        champion = header["champion"]
        if self.choice is not None and self.choice.champion in header["hashes"]:
            champion = self.choice.champion
        rank = (header["epoch"], header["version"])
        if rank < (serving.epoch, serving.version) or (
            (*rank, champion) == (serving.epoch, serving.version, serving.champion)
        ):
            return False
        model = await in_snapshot_thread(
            load_served_model, self._published, champion, self._step.declared
        )
        if model is None:
            return False  # the trainer will publish models of this declaration
        self._serve(ServingModels(header["version"], champion, {champion: model}, header["epoch"]))
        return True

    def _serve(self, serving: ServingModels) -> None:
        self._step.serving = serving
        self._metrics.serving_version.set(serving.version)
        for spec in self._step.declared.specs():
            self._metrics.serving.labels(spec.name).set(spec.name == serving.champion)
