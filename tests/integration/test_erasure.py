"""Erasure end to end on the real broker and Redis: a worker keeps a customer's features,
dedupe memory and served x; `streamproc erase` leaves no key of it within 5 s; the customer's
next order is pseudonymised; and a replay of the raw and clean topics from before the erasure
writes nothing under the customer's id again."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets, start_group_at
from streamproc.adapters.redis.sweep import delete_namespace
from tests.builders import order
from tests.conftest import REPO
from tests.integration.conftest import (
    CLEAN_ORDERS,
    OUTCOMES,
    PII_KEY,
    RAW_ORDERS,
    Stack,
    Worker,
    new_group,
    produce_raw_orders,
    read_run,
    start_worker,
    stop_worker,
)

PIPELINE = "shop_orders"
ERASE_BUDGET_S = 5.0


def _wait(
    condition: Callable[[], object], what: str, worker: Worker, timeout_s: float = 90
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{worker.log_tail()}")
        time.sleep(0.2)


def _keys(stack: Stack, namespace: str, containing: str) -> list[str]:
    """Every key of the namespace that names `containing` (a SCAN over the namespace)."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        return sorted(
            key.decode()
            for key in client.scan_iter(match=f"{namespace}:*", count=10_000)
            if containing in key.decode()
        )
    finally:
        client.close()


def _served(stack: Stack, namespace: str, event_ids: list[str]) -> list[str]:
    """The event ids among `event_ids` whose served x is in Redis."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        keys = [f"{namespace}:{PIPELINE}:x:{event_id}" for event_id in event_ids]
        return [
            event_id for event_id, key in zip(event_ids, keys, strict=True) if client.exists(key)
        ]
    finally:
        client.close()


def _erased_subjects(worker: Worker) -> float:
    """The worker's gauge (no labels, so no braces in the exposition)."""
    found = re.search(r"^streamproc_erased_subjects (\S+)$", worker.metrics(), re.MULTILINE)
    assert found is not None, "the worker does not export streamproc_erased_subjects"
    return float(found.group(1))


def _records(stack: Stack, start: list[TopicPartition]) -> int:
    """Records (committed ones) in the topic of `start` from there to its end now. Not an
    offset difference: a transaction's commit marker takes an offset, and is no record."""
    ends = {e.partition: e.offset for e in end_offsets(stack.kafka, start[0].topic)}
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": "it-count"})
    consumer.assign(start)
    count, left = 0, {tp.partition for tp in start if tp.offset < ends[tp.partition]}
    try:
        while left:
            for message in consumer.consume(1000, timeout=0.5):
                offset, partition = message.offset(), message.partition()
                assert offset is not None and partition is not None  # a record, not an event
                count += offset < ends[partition]
            positions = consumer.position([TopicPartition(start[0].topic, p) for p in left])
            left -= {tp.partition for tp in positions if tp.offset >= ends[tp.partition]}
    finally:
        consumer.close()
    return count


def _orders(customer: str, count: int) -> list[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    return [
        order(
            customer_id=customer,
            items=i + 1,  # no two alike: none is a resubmission of another
            occurred_at=now_ms - (count - i) * 60_000,
        )
        for i in range(count)
    ]


def _erase(stack: Stack, group: str, subject: str) -> tuple[dict[str, Any], float]:
    env = {
        **os.environ,
        "STREAMPROC_KAFKA_BOOTSTRAP": stack.bootstrap,
        "STREAMPROC_APP_ID": group,
        "STREAMPROC_REDIS_URL": stack.redis_url,
        "STREAMPROC_REDIS_NAMESPACE": group,
        "STREAMPROC_PII_KEY": PII_KEY,
        "STREAMPROC_PIPELINE": str(REPO / "pipelines/shop_orders.yaml"),
    }
    started = time.monotonic()
    result = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streamproc.cli", "erase", subject, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report, seconds


def test_an_erased_customer_leaves_no_key_and_a_replay_brings_none_back(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    customer, other = f"erase-{uuid.uuid4().hex[:10]}", f"keep-{uuid.uuid4().hex[:10]}"
    raw_start, clean_start = (
        end_offsets(stack.kafka, RAW_ORDERS),
        end_offsets(stack.kafka, CLEAN_ORDERS),
    )
    group = new_group(stack)
    run = group.encode()
    before = _orders(customer, 4)
    theirs = [str(o["event_id"]) for o in before]
    try:
        worker = start_worker(stack, group, tmp_path / "first")
        produce_raw_orders(stack, serde, [*before, *_orders(other, 3)], run)
        _wait(lambda: len(_served(stack, group, theirs)) == 4, "the customer's x logged", worker)
        assert len(_keys(stack, group, f"{{{customer}}}")) >= 3  # features, dedupe, x index

        known = _erased_subjects(worker)  # erasures of earlier runs are on the topic too
        report, seconds = _erase(stack, group, customer)
        # The figures, in -s output. The budget holds the erasure, from its record to the
        # last sweep; the command's start (importing every command's modules, River's
        # included) comes on top, and depends on the machine's load.
        print(f"erase: {report['seconds']:.2f} s erasing, {seconds:.2f} s with the command's start")
        assert report["seconds"] <= ERASE_BUDGET_S
        assert report["entity_key"] == customer
        assert report["deleted"]["features"] == 1 and report["deleted"]["served_x"] == 4
        assert _keys(stack, group, customer) == []
        assert _served(stack, group, theirs) == []
        assert _keys(stack, group, f"{{{other}}}") != []  # nobody else's data went

        # the worker has read the erasure: the customer's next order is kept pseudonymised
        pseudonym = report["pseudonym"]
        _wait(lambda: _erased_subjects(worker) > known, "the erasure read", worker)
        later = [order(customer_id=customer, items=50, occurred_at=int(time.time() * 1000))]
        produce_raw_orders(stack, serde, later, run)
        found = read_run(stack, clean_start, run, expected=8, timeout_s=60)
        clean = [serde.decode(m.value()) for m in found]
        [again] = [c for c in clean if c["event_id"] == later[0]["event_id"]]
        assert again["entity_key"] == again["customer_id"] == pseudonym
        assert (again["given_name"], again["family_name"], again["email_hash"]) == (None,) * 3
        _wait(lambda: _keys(stack, group, f"{{{pseudonym}}}"), "the pseudonym's features", worker)
        assert _keys(stack, group, customer) == []
        stop_worker(worker)

        # a replay from before the erasure, into the same Redis namespace
        replay = f"{group}-replay"
        start_group_at(stack.kafka, replay, [*raw_start, *clean_start])
        start_group_at(stack.kafka, replay, end_offsets(stack.kafka, OUTCOMES))
        replaying = start_worker(
            stack, replay, tmp_path / "replay", STREAMPROC_REDIS_NAMESPACE=group
        )
        # every raw order cleaned again (the customer's pseudonymised), and every clean one
        # read, the old ones and the new ones (a raw batch counts once its outputs are acked)
        raw_total = _records(stack, raw_start)
        _wait(
            lambda: (
                replaying.counter("streamproc_records_consumed_total", topic=RAW_ORDERS)
                >= raw_total
                and replaying.counter("streamproc_records_consumed_total", topic=CLEAN_ORDERS)
                >= _records(stack, clean_start)
            ),
            "the replay",
            replaying,
        )
        assert replaying.counter("streamproc_feature_events_total", outcome="erased") == 4
        assert _keys(stack, group, customer) == []
    finally:
        delete_namespace(stack.redis_url, group)
