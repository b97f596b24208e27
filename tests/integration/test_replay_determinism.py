"""Determinism: two replays of one log, run at once so that their timing differs, build the
same features (a hash of each namespace's feature hashes, but for what is a replay's own: the
write clock and its clean topic's offsets) and the same models (each model's predictions on a
probe set of served vectors, equal to the bit)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC, models_key, read_latest
from streamproc.adapters.kafka.producer import produce_records
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.adapters.redis.client import redis_client
from streamproc.adapters.redis.served import RedisServedLog
from streamproc.config.pipeline import load_pipeline
from streamproc.core.learning import probability
from streamproc.core.training import ServedX, load_state, read_header
from tests.harness.oracles import RedisState
from tests.integration.conftest import Stack
from tests.integration.replay_support import (
    OwnDeployment,
    RunningReplay,
    own_deployment,
    replay_records,
    start_replay,
)

EVENTS = 4_000
PROBES = 300
SETTLED_S = 8.0  # no snapshot learned more for this long: the trainer has learned all it can


@pytest.fixture
def deployment(stack: Stack, tmp_path: Path) -> Iterator[OwnDeployment]:
    # The raw topic as declared, six partitions: a replay keeps them in step by log time
    # (without, it read them at different paces and the models differed in CI)
    yield from own_deployment(stack, tmp_path)


def _features_digest(stack: Stack, namespace: str) -> tuple[int, str]:
    """How many feature hashes, and a digest of them without the write clock (`w`) and the
    offset marks (`o|…`, offsets of the version's own clean topic)."""
    state = RedisState(stack.redis_url, namespace, "shop_orders")
    try:
        hashes = state.features()
    finally:
        state.close()
    kept = {
        key: {k: v for k, v in fields.items() if k != "w" and not k.startswith("o|")}
        for key, fields in hashes.items()
    }
    return len(kept), hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


class Lineage:
    """The newest model snapshot of one version's group."""

    def __init__(self, stack: Stack, group: str) -> None:
        self._topic = SnapshotTopic(stack.kafka, SNAPSHOTS_TOPIC)
        self._scope = f"{group}/shop_orders"
        self.data: bytes | None = None
        self.learned = -1
        self.changed_at = time.monotonic()

    def look(self) -> None:
        found = read_latest(self._topic, self._scope).get(models_key(self._scope))
        if found is not None and read_header(found)["learned"] != self.learned:
            self.data, self.learned = found, read_header(found)["learned"]
            self.changed_at = time.monotonic()

    def close(self) -> None:
        self._topic.close()


def _settle(lineages: list[Lineage], replays: list[RunningReplay], timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        for lineage in lineages:
            lineage.look()
        learned = {lineage.learned for lineage in lineages}
        quiet = min(time.monotonic() - lineage.changed_at for lineage in lineages)
        if len(learned) == 1 and learned != {-1} and quiet >= SETTLED_S:
            return
        for replay in replays:
            assert replay.process.poll() is None, "\n".join(replay.lines())
        assert time.monotonic() < deadline, f"learned: {[x.learned for x in lineages]}"
        time.sleep(1)


def _served(stack: Stack, namespace: str, event_ids: list[str]) -> dict[str, dict[str, float]]:
    """The x each event was served, by event id."""

    async def fetch() -> dict[str, ServedX]:
        client = redis_client(stack.redis_url)
        try:
            return await RedisServedLog(client, f"{namespace}:shop_orders").fetch(event_ids)
        finally:
            await client.aclose()

    return {event_id: dict(served.x) for event_id, served in asyncio.run(fetch()).items()}


def _predictions(data: bytes, pipeline: Path, probes: list[dict[str, float]]) -> dict[str, Any]:
    models = load_pipeline(pipeline).models
    assert models is not None
    state, _ = load_state(data, models)
    return {name: [probability(model, x) for x in probes] for name, model in state.models.items()}


def _trainer_lines(deployment: OwnDeployment) -> str:
    """What each replay's trainer said: leases, restores, promotions."""
    lines = []
    for log in sorted((deployment.folder / "state").glob("replay-*.log")):
        said = log.read_text(errors="replace").splitlines()
        lines += [f"{log.name}: {line}" for line in said if "trainer of" in line]
    return "\n".join(lines)


def test_two_replays_of_one_log_build_identical_features_and_models(
    stack: Stack, serde: AvroSerde, deployment: OwnDeployment, tmp_path: Path
) -> None:
    records, event_ids = replay_records(deployment, serde, 31, EVENTS)
    produce_records(stack.kafka, records)
    replays = [
        start_replay(deployment.env, tmp_path, "--namespace", version) for version in ("v2", "v3")
    ]
    lineages = [Lineage(stack, f"{deployment.group}-{v}") for v in ("v2", "v3")]
    try:
        for replay in replays:
            replay.wait_for("caught up")
        _settle(lineages, replays)
        v2, v3 = (_features_digest(stack, f"{deployment.group}:{v}") for v in ("v2", "v3"))
        assert v2[0] > 1000  # entities, per view
        assert v2 == v3

        served = [
            _served(stack, f"{deployment.group}:{v}", sorted(event_ids)) for v in ("v2", "v3")
        ]
        assert served[0] == served[1]  # every order served the same x
        probes = [served[0][e] for e in sorted(served[0])[:PROBES]]
        assert len(probes) == PROBES
        assert lineages[0].data is not None and lineages[1].data is not None
        first = _predictions(lineages[0].data, deployment.pipeline, probes)
        second = _predictions(lineages[1].data, deployment.pipeline, probes)
        assert lineages[0].learned > EVENTS // 4
        assert first == second, _trainer_lines(deployment)  # floats compared exactly: to the bit
        assert len({p for ps in first.values() for p in ps}) > 10  # trained, not constant
    finally:
        for replay in replays:
            replay.stop()
        for lineage in lineages:
            lineage.close()
