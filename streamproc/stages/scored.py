"""Stage: the scored chain, one batch of clean records → features → predict → served-x log
→ outputs and rejections. The worker, run-file and the hot-path benchmark all run this one
chain; only the stores behind it differ (Redis, or memory).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streamproc.core.training import ServedX
from streamproc.records import Envelope, OutRecord, Rejection
from streamproc.stages.feature_step import FeatureStep, FeatureStepOutcome
from streamproc.stages.predict import PredictStep
from streamproc.stages.serving_route import ServingRoute


class ServedLog(Protocol):
    """Where the x each event was served is kept for the label join (the trainer reads it),
    indexed by entity (`entities`: its event ids) for an erasure."""

    async def log(
        self,
        served: Sequence[tuple[str, ServedX]],
        ttl_ms: int,
        newest_ms: Mapping[int, int],
        wall_ms: int,
        entities: Mapping[str, Sequence[str]],
    ) -> None: ...


@dataclass(slots=True)
class ScoredOutcome:
    """What a batch of clean records became: the feature step's result (late records to
    divert among it), the predictions, every rejection, and seconds spent per step."""

    step: FeatureStepOutcome
    predictions: list[OutRecord] = field(default_factory=list)
    served: list[tuple[str, ServedX]] = field(default_factory=list)  # event id, its x
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rejections(self) -> list[Rejection]:
        return self.step.rejections

    def outputs(self) -> list[OutRecord]:
        """Everything to send, but the dead letters: diverted records, then predictions."""
        return [*self.step.diverted, *self.predictions]


class ScoredChain:
    """Features, then (with models) predictions and the served-x log, for one batch."""

    def __init__(
        self,
        features: FeatureStep,
        predict: PredictStep | None = None,
        served_log: ServedLog | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        route: ServingRoute | None = None,
    ) -> None:
        """Without a `route`, predictions go to the declared topic (a file, a test)."""
        if (predict is None) != (served_log is None):
            raise ValueError("a predict step needs a served-x log (the label join reads it)")
        self._features = features
        self._predict = predict
        self._served_log = served_log
        self._clock_ms = clock_ms
        self._route = route

    async def process(self, batch: Sequence[Envelope]) -> ScoredOutcome:
        """Never raises for a bad record (it becomes a rejection); a store's InfraError and
        OffsetConflict escape."""
        started = time.perf_counter()
        result = ScoredOutcome(await self._features.process(batch, wall_ms=self._clock_ms()))
        featured = time.perf_counter()
        result.seconds["features"] = featured - started
        if self._predict is None or self._served_log is None:
            return result
        predicted = self._predict.process(result.step.orders, now_ms=self._clock_ms())
        scored = time.perf_counter()
        await self._served_log.log(
            predicted.served,
            self._predict.declared.labels.max_delay_ms,
            predicted.newest_ms,
            wall_ms=self._clock_ms(),
            entities=predicted.entities,
        )
        result.seconds["predict"] = scored - featured
        result.seconds["served_x"] = time.perf_counter() - scored
        result.predictions = predicted.predictions
        if self._route is not None:
            result.predictions = await self._route.route(predicted.predictions)
        result.served = predicted.served
        result.step.rejections.extend(predicted.rejections)
        return result
