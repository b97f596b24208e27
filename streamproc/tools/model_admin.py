"""Tool: what an operator does to a deployment's models, through the snapshot topic: list
them (versions, labels learned, prequential quality), promote one, roll back, or hand the
choice back to the promotion rule. Workers pick a choice up within their follow interval."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from streamproc.adapters.kafka.model_snapshots import (
    ChampionChoice,
    champion_key,
    models_key,
    read_latest,
)
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.config.models import Models
from streamproc.core.training import read_header
from streamproc.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ModelReport:
    """The newest snapshot's header and the current champion choice of one deployment."""

    scope: str
    snapshot: dict[str, Any] | None
    choice: ChampionChoice | None

    @property
    def champion(self) -> str | None:
        if self.choice is not None:
            return self.choice.champion
        return None if self.snapshot is None else str(self.snapshot["champion"])


class ModelControl:
    """An operator's hand on a deployment's models: what serves, and a champion chosen by hand."""

    def __init__(self, topic: SnapshotTopic, scope: str, declared: Models) -> None:
        self._topic = topic
        self._scope = scope
        self._declared = declared

    def report(self) -> ModelReport:
        found = read_latest(self._topic, self._scope)
        snapshot = found.get(models_key(self._scope))
        choice = found.get(champion_key(self._scope))
        return ModelReport(
            self._scope,
            None if snapshot is None else read_header(snapshot),
            None if choice is None else ChampionChoice.load(choice),
        )

    def promote(self, name: str) -> ChampionChoice:
        """`name` serves from now on, pinned: the promotion rule leaves it alone."""
        declared = [self._declared.champion.name, *(c.name for c in self._declared.challengers)]
        if name not in declared:
            raise ConfigError(
                f"model {name!r} is not declared in the pipeline (declared: {', '.join(declared)})"
            )
        return self._publish(self._current().succeeded_by(name, True, "operator"))

    def rollback(self) -> ChampionChoice:
        """The champion before the current one serves again, pinned."""
        current = self._current()
        if not current.previous:
            raise ConfigError(f"{self._scope}: no earlier champion to roll back to")
        back = ChampionChoice(
            current.previous[0], True, "operator", _now_ms(), current.previous[1:]
        )
        return self._publish(back)

    def release(self) -> ChampionChoice:
        """The champion stays; the promotion rule may replace it again."""
        current = self._current()
        return self._publish(
            ChampionChoice(current.champion, False, "operator", _now_ms(), current.previous)
        )

    def _current(self) -> ChampionChoice:
        report = self.report()
        if report.choice is not None:
            return report.choice
        return ChampionChoice(report.champion or self._declared.champion.name, False, "declared", 0)

    def _publish(self, choice: ChampionChoice) -> ChampionChoice:
        self._topic.publish(champion_key(self._scope), choice.dump())
        return choice

    def close(self) -> None:
        """Closes the topic's consumer (a report reads the topic); done with the command."""
        self._topic.close()


def report_lines(report: ModelReport) -> list[str]:
    snapshot = report.snapshot
    if snapshot is None:
        return [f"{report.scope}: no snapshot yet (no trainer has published one)"]
    pinned = report.choice is not None and report.choice.pinned
    age_s = (_now_ms() - snapshot["taken_at_ms"]) / 1000
    lines = [
        f"{report.scope}: snapshot v{snapshot['version']} (epoch {snapshot['epoch']}, "
        f"{age_s:.0f} s ago), {snapshot['learned']} labels learned, {snapshot['held']} held",
        f"label offsets: {snapshot['label_offsets']}",
        f"{'model':<12} {'role':<18} {'ROC AUC':>8} {'log loss':>9} {'accuracy':>9} {'labels':>8}",
    ]
    for name, card in snapshot["scores"].items():
        role = "champion" if name == report.champion else "challenger"
        role += " (pinned)" if pinned and name == report.champion else ""
        lines.append(
            f"{name:<12} {role:<18} {card['roc_auc']:>8.4f} {card['log_loss']:>9.4f} "
            f"{card['accuracy']:>9.4f} {card['labels']:>8.0f}"
        )
    if report.choice is not None and report.choice.previous:
        lines.append(f"earlier champions: {', '.join(report.choice.previous)}")
    return lines


def _now_ms() -> int:
    return int(time.time() * 1000)
