"""Online features against the real Redis: round trips per batch, update cost per event,
read latency, memory per entity. Baselines in the same run: the in-memory store (the pure
computation) and a bare HGETALL of the same hash.

    python -m benchmarks.features_bench [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import redis

from streamproc.adapters.memory import InMemoryFeatureStore
from streamproc.adapters.redis.client import redis_client
from streamproc.adapters.redis.stores import RedisFeatureStore
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.config.pipeline import load_pipeline
from streamproc.core.features.reader import FeatureReader
from streamproc.core.features.stage import FeatureStage
from streamproc.core.features.state import EntityWrite, FeatureEvent, FeatureStore
from streamproc.scenario.shop import GeneratorConfig, generate
from tests.conftest import REPO
from tests.features_reference import events_from_truth

REDIS_URL = os.environ.get("STREAMPROC_REDIS_URL", "redis://127.0.0.1:6379/0")
BATCH = 500
READS = 5_000


class Counting:
    """Counts the store's round trips."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.loads = self.saves = 0

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, str]]:
        self.loads += 1
        return await self.store.load(keys)

    async def save(self, writes: Sequence[EntityWrite], wall_ms: int) -> None:
        self.saves += 1
        await self.store.save(writes, wall_ms)


async def _apply(store: FeatureStore, events: list[FeatureEvent]) -> float:
    """µs per event to apply all events in batches."""
    features = load_pipeline(REPO / "pipelines/shop_orders.yaml").features
    stage = FeatureStage(features, store)
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        await stage.process(events[start : start + BATCH], wall_ms=int(time.time() * 1000))
    return (time.perf_counter() - started) / len(events) * 1e6


async def main_async(events_wanted: int) -> None:
    truth = generate(GeneratorConfig(events=events_wanted, seed=3)).truth
    events = events_from_truth(truth)
    print(f"{len(events)} clean orders with an entity, batches of {BATCH}")
    memory_us = await _apply(InMemoryFeatureStore(), events)

    namespace = f"bench-features-{uuid.uuid4().hex[:8]}"
    client = redis_client(REDIS_URL)
    counting = Counting(RedisFeatureStore(client, namespace))
    try:
        redis_us = await _apply(counting, events)
        batches = -(-len(events) // BATCH)
        features = load_pipeline(REPO / "pipelines/shop_orders.yaml").features
        reader = FeatureReader(features, RedisFeatureStore(client, namespace))
        entities = sorted({e.entity for e in events})
        rng = random.Random(1)  # noqa: S311 - a sample, not a secret
        sample = [rng.choice(entities) for _ in range(READS)]
        now = int(time.time() * 1000)
        get_ms = await _latencies(lambda e: reader.get(e, now), sample)
        view = FeatureStage(features, counting).views[0]
        raw_ms = await _latencies(lambda e: client.hgetall(f"{namespace}:{view.key(e)}"), sample)
        memory = _memory_per_entity(namespace)
    finally:
        await client.aclose()
        delete_namespace(REDIS_URL, namespace)

    print(
        f"round trips per batch: {(counting.loads + counting.saves) / batches:.2f} "
        f"({counting.loads} loads + {counting.saves} saves for {batches} batches)"
    )
    print(
        f"update cost per event: {redis_us:.1f} µs with Redis, {memory_us:.1f} µs in memory "
        f"(×{redis_us / memory_us:.2f}); {1e6 / redis_us:,.0f} events/s"
    )
    print(
        f"single-entity read: FeatureReader.get p50 {_pct(get_ms, 50):.3f} ms, "
        f"p99 {_pct(get_ms, 99):.3f} ms; bare HGETALL p50 {_pct(raw_ms, 50):.3f} ms, "
        f"p99 {_pct(raw_ms, 99):.3f} ms"
    )
    print(
        f"memory per entity (MEMORY USAGE): mean {statistics.fmean(memory):,.0f} B, "
        f"p99 {_pct(memory, 99):,.0f} B, max {max(memory):,} B, {len(memory)} entities"
    )


async def _latencies(call: Callable[[str], Awaitable[object]], sample: list[str]) -> list[float]:
    out = []
    for entity in sample:
        started = time.perf_counter()
        await call(entity)
        out.append((time.perf_counter() - started) * 1000)
    return out


def _memory_per_entity(namespace: str) -> list[int]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return [
            int(client.memory_usage(key) or 0)
            for key in client.scan_iter(match=f"{namespace}:*", count=10_000)
        ]
    finally:
        client.close()


def _pct(values: list[float] | list[int], percent: int) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    asyncio.run(main_async(parser.parse_args().events))


if __name__ == "__main__":
    main()
