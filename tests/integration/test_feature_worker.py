"""Online features through the real worker, broker and Redis, across a SIGKILL between the
Redis write and the offset commit: the features equal a plain recomputation (nothing counted
twice, nothing lost)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets
from streamproc.adapters.redis.client import redis_client
from streamproc.adapters.redis.stores import RedisFeatureStore
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.config.pipeline import load_pipeline
from streamproc.core.features.reader import FeatureReader
from streamproc.core.features.state import FeatureEvent
from streamproc.scenario.shop import GeneratorConfig, generate
from tests.conftest import REPO
from tests.features_reference import events_from_truth, features_at, same
from tests.integration.conftest import (
    CLEAN_ORDERS,
    PII_KEY,
    RAW_ORDERS,
    Stack,
    Worker,
    new_group,
    produce_raw_orders,
    start_worker,
    stop_worker,
)

EVENTS = 3_000


def _wait(
    condition: Callable[[], object], what: str, worker: Worker, timeout_s: float = 120
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{worker.log_tail()}")
        time.sleep(0.2)


def _marks(stack: Stack, namespace: str) -> dict[int, int]:
    """The highest source (raw) offset per partition in the features' offset marks."""
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    marks: dict[int, int] = {}
    for key in client.scan_iter(f"{namespace}:*", count=10_000):
        for field, value in client.hgetall(key).items():
            assert isinstance(field, str)  # decoded; redis-py types a field as str or bytes
            if field.startswith("o|"):
                partition = int(field[2:])
                marks[partition] = max(marks.get(partition, -1), int(value))
    client.close()
    return marks


def _committed(stack: Stack, group: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": group})
    try:
        partitions = end_offsets(stack.kafka, RAW_ORDERS)
        return {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
    finally:
        consumer.close()


async def test_features_survive_a_sigkill_between_the_redis_write_and_the_commit(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    scenario = generate(GeneratorConfig(events=EVENTS, seed=41))
    group = new_group(stack)
    clean_start = {tp.partition: tp.offset for tp in end_offsets(stack.kafka, CLEAN_ORDERS)}
    produce_raw_orders(stack, serde, scenario.events)
    namespace = f"{group}:features"
    try:
        # commits far apart: the kill lands after Redis writes the features never committed;
        # at least once, so the clean records are visible before their commit (the guard is
        # what this tests; exactly-once is test_exactly_once.py's)
        first = start_worker(
            stack,
            group,
            tmp_path / "first",
            STREAMPROC_DELIVERY="at-least-once",
            STREAMPROC_COMMIT_INTERVAL_S="600",
            STREAMPROC_SESSION_TIMEOUT_S="6",  # the restart need not wait long for the dead
        )
        _wait(
            lambda: first.counter("streamproc_feature_events_total", outcome="applied") >= 800,
            "features applied",
            first,
        )
        first.process.kill()  # SIGKILL: no shutdown, no commit
        first.process.wait()
        # features were written for raw records the group has not committed: a restart
        # re-reads them, the clean stage re-sends them, the feature step must not recount them
        marks, committed = _marks(stack, namespace), _committed(stack, group)
        assert any(marks[p] >= committed[p] for p in marks), (marks, committed)

        second = start_worker(
            stack, group, tmp_path / "second", STREAMPROC_DELIVERY="at-least-once"
        )
        _wait(
            lambda: second.counter("streamproc_records_consumed_total", topic=RAW_ORDERS) >= EVENTS,
            "the raw topic replayed",
            second,
        )
        time.sleep(1)  # the last clean records reach the broker
        clean_total = sum(
            tp.offset - clean_start[tp.partition] for tp in end_offsets(stack.kafka, CLEAN_ORDERS)
        )
        _wait(
            lambda: (
                second.counter("streamproc_records_consumed_total", topic=CLEAN_ORDERS)
                >= clean_total
            ),
            "the clean topic consumed",
            second,
        )
        absorbed = second.counter("streamproc_feature_events_total", outcome="replayed")
        assert absorbed > 0, "the restart replayed nothing: the crash window was not exercised"
        stop_worker(second)

        [view] = load_pipeline(REPO / "pipelines/shop_orders.yaml").features.views
        events = events_from_truth(scenario.truth, PII_KEY.encode())
        by_entity: dict[str, list[FeatureEvent]] = {}
        for event in events:
            by_entity.setdefault(event.entity, []).append(event)
        at = max(e.occurred_at_ms for e in events) + 1
        client = redis_client(stack.redis_url)
        spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
        reader = FeatureReader(spec.features, RedisFeatureStore(client, namespace))
        online = await reader.get_many(sorted(by_entity), int(time.time() * 1000), at)
        await client.aclose()
        wrong = [
            (entity, name, want, online[entity][name].value)
            for entity, earlier in by_entity.items()
            for name, want in features_at(view, earlier, at, {}).items()
            if not same(want, online[entity][name].value)
        ]
        assert wrong == []
    finally:
        delete_namespace(stack.redis_url, group)
