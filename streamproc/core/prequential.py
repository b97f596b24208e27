"""Core: the worker's Trainer driven by event time alone, for files, tests and benchmarks: each
record is scored by every model, then its x waits for its label, which is learned once the
stream's event time reaches the time the label became known (test, then train; no label from
the future). The same Trainer as the worker's, so a file learns what live traffic would."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streamproc.config.models import Models
from streamproc.core.learning import Promotion, probability
from streamproc.core.training import Label, ServedX, Trainer, TrainingReport


class PrequentialRun:
    """Scores records in event-time order and learns the labels given up front."""

    def __init__(self, models: Models, labels: Iterable[tuple[str, bool, int]]) -> None:
        """`labels`: (event id, value, event time the label became known, ms)."""
        self.trainer = Trainer(models)
        by_time = sorted(labels, key=lambda label: label[2])  # as a label topic would hold them
        self.sampled_out = self.trainer.accept(
            [
                Label(event_id, value, at_ms, 0, n)
                for n, (event_id, value, at_ms) in enumerate(by_time)
            ]
        )
        self._served: dict[str, ServedX] = {}
        self.promotions: list[Promotion] = []
        self.unjoined = 0

    @property
    def champion(self) -> str:
        return self.trainer.state.champion

    def score(self, event_id: str, at_ms: int, x: Mapping[str, float]) -> dict[str, float]:
        """Every model's score, learned from every label known before `at_ms`."""
        # Event time stands in for the wall clock of the held labels' retry: each retry goes
        # through all of them (events never scored: rejected, duplicates), too dear per record.
        self._learn(self.trainer.due(at_ms, wall_ms=at_ms), at_ms)
        state = self.trainer.state
        scores = {name: probability(model, x) for name, model in state.models.items()}
        self._served[event_id] = ServedX(dict(x), scores, at_ms, state.version)
        held = state.held.get(event_id)
        if held is not None:  # its label came first (an immediate one, or early): learn it now
            self._learn([held[0]], at_ms)
        return scores

    def finish(self, at_ms: int) -> None:
        """Learn what is due by `at_ms` (the end of the stream), and give up the labels whose
        event never came."""
        self._learn(self.trainer.due(at_ms), at_ms)

    def _learn(self, labels: list[Label], at_ms: int) -> None:
        if not labels:
            return
        report: TrainingReport = self.trainer.learn(labels, self._served, at_ms)
        self.promotions += report.promotions
        self.unjoined += report.unjoined
        held = self.trainer.state.held
        for label in labels:  # a learned event's x is done with
            if label.event_id not in held:
                self._served.pop(label.event_id, None)
