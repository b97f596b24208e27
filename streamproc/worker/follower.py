"""Worker: the snapshot follower that hot-swaps what a worker serves."""

from __future__ import annotations

import asyncio
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
from streamproc.adapters.outage import Outages, ride_through
from streamproc.core.training import load_served_model, read_header
from streamproc.stages.predict import PredictStep, ServingModels
from streamproc.worker.snapshot_thread import in_snapshot_thread, release_freed_memory


class SnapshotFollower:
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
        self._outages = outages or Outages(budget_s=120, gauge=metrics)
        self._topic = topic
        self._step = step
        self._metrics = metrics
        self.choice: ChampionChoice | None = None
        self._published: bytes | None = None  # the newest serving record
        self._reading: asyncio.Future[dict[str, bytes]] | None = None
        self.ready = asyncio.Event()  # set once the topic has been read to its end

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
        if await self._poll():  # the previous models and the snapshot read are freed now
            await in_snapshot_thread(release_freed_memory)

    async def _poll(self) -> bool:
        """Whether other models were swapped in."""
        self._reading = asyncio.ensure_future(
            asyncio.to_thread(read_latest, self._topic, self._pipeline)
        )
        found = await asyncio.shield(self._reading)
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
