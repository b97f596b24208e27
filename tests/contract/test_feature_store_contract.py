"""One suite for every FeatureStore: in memory (files, tests) and Redis (the worker)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamproc.adapters.memory import InMemoryFeatureStore
from streamproc.adapters.redis.stores import RedisFeatureStore
from streamproc.config.pipeline import Features, load_pipeline
from streamproc.core.features.stage import FeatureStage
from streamproc.core.features.state import EntityWrite, FeatureEvent, FeatureStore, OffsetConflict
from streamproc.scenario.shop import GeneratorConfig, generate
from tests.conftest import REPO
from tests.contract.conftest import REDIS_KINDS, connect, drop
from tests.features_reference import events_from_truth

REDIS_URL = os.environ.get("STREAMPROC_REDIS_URL", "redis://127.0.0.1:6379/0")


class Backend:
    """A store, and a way to read its raw bytes back for byte-for-byte comparisons."""

    def __init__(self, store: FeatureStore, dump: Any) -> None:
        self.store = store
        self.dump = dump


@pytest.fixture(params=REDIS_KINDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        memory = InMemoryFeatureStore()

        async def dump_memory() -> dict[str, Any]:
            return {key: sorted(fields.items()) for key, fields in memory.hashes.items()}

        yield Backend(memory, dump_memory)
        return
    client = await connect(request.param, request)
    namespace = f"test:{uuid.uuid4().hex}"

    async def dump_redis() -> dict[str, Any]:
        keys = sorted([key async for key in client.scan_iter(f"{namespace}:*", count=10_000)])
        return {key: await client.dump(key) for key in keys}  # Redis' own serialization

    yield Backend(RedisFeatureStore(client, namespace), dump_redis)
    await drop(client, namespace)


@pytest.fixture(scope="module")
def features() -> Features:
    return load_pipeline(REPO / "pipelines/shop_orders.yaml").features


@pytest.fixture(scope="module")
def events() -> list[FeatureEvent]:
    return events_from_truth(generate(GeneratorConfig(events=2_000, seed=9)).truth)


async def _run(stage: FeatureStage, events: list[FeatureEvent]) -> list[dict[str, Any]]:
    served = []
    for start in range(0, len(events), 250):
        served.extend((await stage.process(events[start : start + 250], wall_ms=7)).served)
    return [{n: (v.value, v.status, v.age_ms) for n, v in s.features.items()} for s in served]


async def test_every_store_serves_the_same_vectors(
    backend: Backend, features: Features, events: list[FeatureEvent]
) -> None:
    reference = await _run(FeatureStage(features, InMemoryFeatureStore()), events)
    assert await _run(FeatureStage(features, backend.store), events) == reference


async def test_applying_the_same_batch_twice_leaves_the_bytes_identical(
    backend: Backend, features: Features, events: list[FeatureEvent]
) -> None:
    stage = FeatureStage(features, backend.store)
    first, second = events[:300], events[300:600]
    await stage.process(first, wall_ms=1)
    await stage.process(second, wall_ms=2)
    before = await backend.dump()
    replay = await stage.process(second, wall_ms=3)  # the worker died before committing
    assert await backend.dump() == before
    assert replay.replayed == len(second)
    assert replay.writes == 0


async def test_a_write_whose_offset_mark_moved_is_refused(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    """Refused whole on one Redis; on a cluster each entity's write is atomic on its own (one
    slot per entity), so the others of the batch may land: their marks make a retry skip them."""
    store = backend.store
    await store.save([EntityWrite("k1", {"o|0": None}, {"o|0": "5", "t": "1"}, [], 60_000)], 1)
    before = await backend.dump()
    stale = [
        EntityWrite("k2", {"o|0": None}, {"o|0": "9"}, [], 60_000),
        EntityWrite("k1", {"o|0": "4"}, {"o|0": "6"}, [], 60_000),
    ]
    with pytest.raises(OffsetConflict):
        await store.save(stale, 2)
    loaded = await store.load(["k1", "k2"])
    assert loaded["k1"] == {"o|0": "5", "t": "1"}
    if "cluster" not in request.node.callspec.params["backend"]:
        assert await backend.dump() == before
        assert "k2" not in loaded
