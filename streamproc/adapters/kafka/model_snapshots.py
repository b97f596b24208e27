"""Adapter: what a deployment's models leave on the snapshot topic: its keys (trainer state,
serving models, champion choice), the champion choice record, and reading the newest of each."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

from streamproc.adapters.kafka.snapshots import SnapshotLog, SnapshotTopic
from streamproc.core.training import read_header

SNAPSHOTS_TOPIC = "streamproc.model_snapshots.v1"


def model_scope(app_id: str, pipeline: str) -> str:
    """Snapshots, the champion and the trainer lease belong to a deployment (its consumer
    group) and a pipeline: a demo and production never share models."""
    return f"{app_id}/{pipeline}"


def models_key(pipeline: str) -> str:
    return f"{pipeline}/models"


def champion_key(pipeline: str) -> str:
    return f"{pipeline}/champion"


def serving_key(pipeline: str) -> str:
    return f"{pipeline}/serving"


@dataclass(frozen=True, slots=True)
class ChampionChoice:
    """Who serves, published on the snapshot topic by the trainer (promotion) or an operator
    (`streamproc model promote|rollback|auto`). Pinned: the rule promotes no one."""

    champion: str
    pinned: bool
    by: str
    at_ms: int
    previous: list[str] = field(default_factory=list)  # earlier champions, newest first

    def dump(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def load(cls, data: bytes) -> ChampionChoice:
        return cls(**json.loads(data))

    def succeeded_by(self, champion: str, pinned: bool, by: str) -> ChampionChoice:
        previous = [self.champion, *self.previous][:20] if champion != self.champion else []
        return ChampionChoice(
            champion, pinned, by, int(time.time() * 1000), previous or self.previous
        )


def forget_models(topic: SnapshotTopic, scope: str) -> None:
    """Tombstones for a finished deployment's models (a demo, a test, a benchmark), so
    compaction keeps the topic to the deployments that still run."""
    topic.forget([models_key(scope), serving_key(scope), champion_key(scope)])


def read_latest(topic: SnapshotLog, scope: str) -> dict[str, bytes]:
    """The newest state and serving models (highest epoch, then version) and champion choice
    of `scope` written since the topic was last read; a zombie trainer's late snapshot loses
    by epoch."""
    return topic.read_new(f"{scope}/", _newer_snapshot)


def _newer_snapshot(key: str, kept: bytes, newer: bytes) -> bool:
    if key.endswith("/champion"):  # a champion choice: the last one wins
        return True
    return ranked(newer) >= ranked(kept)


def ranked(snapshot: bytes) -> tuple[int, int]:
    header = read_header(snapshot)
    return header["epoch"], header["version"]
