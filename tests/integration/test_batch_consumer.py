"""The worker's batch consumer on the real broker and Redis: a second worker that joins and then
leaves mid-stream, and a worker stopped with SIGTERM mid-backlog, lose nothing and repeat
nothing; a graceful stop commits exactly the batches it finished."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.records import SOURCE_HEADER
from tests.builders import ORDER_SUBMITTED, order
from tests.integration.conftest import (
    CLEAN_ORDERS,
    RAW_ORDERS,
    RUN_HEADER,
    ProducerHeaders,
    Stack,
    Worker,
    new_group,
    start_worker,
    stop_worker,
)

PREDICTIONS = "shop.order_prediction.v1"
CUSTOMERS = 500  # spread over every partition


def _orders(run: str, count: int) -> list[dict[str, Any]]:
    """Valid orders with unique content (no duplicates among them), `run`-prefixed ids."""
    return [
        order(
            event_id=f"{run}-{sequence}",
            customer_id=f"{run}-c{sequence % CUSTOMERS}",
            items=sequence // CUSTOMERS + 1,
            amount=10.0 + sequence % 200,
        )
        for sequence in range(count)
    ]


def _produce(  # noqa: PLR0913, PLR0917 - the test's fixtures, then what to send and how fast
    stack: Stack,
    serde: AvroSerde,
    run: str,
    orders: list[dict[str, Any]],
    rate: float,
    until: threading.Event | None = None,
) -> list[dict[str, Any]]:
    """Send `orders` keyed by customer at `rate` per second (0: at once), stopping early once
    `until` is set; waits for the acks and returns the orders sent."""
    producer = Producer(
        {"bootstrap.servers": stack.bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"}
    )
    started, sent = time.monotonic(), []
    for record in orders:
        if until is not None and until.is_set():
            break
        value = serde.encode(RAW_ORDERS, ORDER_SUBMITTED, record)
        headers: ProducerHeaders = [(RUN_HEADER, run.encode())]
        producer.produce(RAW_ORDERS, value, record["customer_id"].encode(), headers=headers)
        producer.poll(0)
        sent.append(record)
        if rate and (ahead := len(sent) / rate - (time.monotonic() - started)) > 0.005:
            time.sleep(ahead)
    assert producer.flush(30) == 0
    return sent


def _read(stack: Stack, starts: list[TopicPartition]) -> list[Any]:
    """Every record from `starts` to the topic's current end."""
    ends = {tp.partition: tp.offset for tp in end_offsets(stack.kafka, starts[0].topic)}
    left = {tp.partition for tp in starts if tp.offset < ends[tp.partition]}
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": f"it-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign(starts)
    found: list[Any] = []
    deadline = time.monotonic() + 60
    try:
        while left and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                assert message.error() is None, message.error()
                offset, partition = message.offset(), message.partition()
                assert offset is not None and partition is not None  # a record, not an event
                if offset < ends[partition]:
                    found.append(message)
            # the position, not the last record: a transaction's commit marker takes the last
            # offset, and a read_committed reader never sees it
            for tp in consumer.position([TopicPartition(starts[0].topic, p) for p in left]):
                if tp.offset >= ends[tp.partition]:
                    left.discard(tp.partition)
    finally:
        consumer.close()
    assert not left, f"partitions not read to their end: {left}"
    return found


def _event_ids(serde: AvroSerde, messages: list[Any], run: str) -> Counter[str]:
    ids = (str(serde.decode(m.value())["event_id"]) for m in messages)
    return Counter(event_id for event_id in ids if event_id.startswith(f"{run}-"))


def _wait(condition: Any, what: str, *workers: Worker, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n\n".join(worker.log_tail() for worker in workers)
            pytest.fail(f"timed out waiting for {what}:\n{logs}")
        time.sleep(0.2)


def _all_outputs(  # noqa: PLR0913, PLR0917 - the test's fixtures and what it waits for
    stack: Stack,
    serde: AvroSerde,
    run: str,
    starts: dict[str, list[TopicPartition]],
    events: int,
    worker: Worker,
) -> tuple[Counter[str], Counter[str]]:
    """The run's clean orders and predictions by event id, once there is a prediction for
    each of the `events` (and a little longer, for any repeat to land)."""
    deadline = time.monotonic() + 120
    while sum(_event_ids(serde, _read(stack, starts[PREDICTIONS]), run).values()) < events:
        if time.monotonic() > deadline:
            pytest.fail(f"not every order was predicted in time:\n{worker.log_tail()}")
        time.sleep(1)
    time.sleep(2)
    clean = _event_ids(serde, _read(stack, starts[CLEAN_ORDERS]), run)
    predicted = _event_ids(serde, _read(stack, starts[PREDICTIONS]), run)
    return clean, predicted


def _committed(stack: Stack, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": group})
    try:
        partitions = end_offsets(stack.kafka, topic)
        return {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=10)}
    finally:
        consumer.close()


def _starts(stack: Stack) -> dict[str, list[TopicPartition]]:
    return {
        topic: end_offsets(stack.kafka, topic) for topic in (RAW_ORDERS, CLEAN_ORDERS, PREDICTIONS)
    }


def test_a_worker_joining_and_leaving_mid_stream_loses_and_repeats_nothing(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    run, rate = uuid.uuid4().hex[:12], 1_000.0
    group = new_group(stack)
    starts = _starts(stack)
    # The stream goes on until the second worker has come and gone, however long that takes.
    orders, stop = _orders(run, 90_000), threading.Event()  # 90 s at most
    sent: list[dict[str, Any]] = []
    first = start_worker(stack, group, tmp_path / "first", STREAMPROC_SESSION_TIMEOUT_S="10")
    second: Worker | None = None
    producing = threading.Thread(
        target=lambda: sent.extend(_produce(stack, serde, run, orders, rate, stop))
    )
    try:
        producing.start()
        time.sleep(2)
        second = start_worker(stack, group, tmp_path / "second", STREAMPROC_SESSION_TIMEOUT_S="10")
        _wait(  # cooperative-sticky may move either topic's partitions to it
            lambda: (
                second.counter("streamproc_records_consumed_total", topic=RAW_ORDERS)
                + second.counter("streamproc_records_consumed_total", topic=CLEAN_ORDERS)
                >= 500
            ),
            "the second worker to take partitions and process",
            first,
            second,
        )
        stop_worker(second)  # SIGTERM mid-stream: its partitions move back to the first
        assert second.process.returncode == 0, second.log_tail()
        time.sleep(2)  # the first worker alone again, the stream still flowing
        stop.set()
        producing.join()
        events = len(sent)
        clean, predicted = _all_outputs(stack, serde, run, starts, events, first)
        wanted = {record["event_id"] for record in sent}
        assert set(clean) == wanted and set(predicted) == wanted
        assert max(clean.values()) == 1, [k for k, n in clean.items() if n > 1][:5]
        assert max(predicted.values()) == 1, [k for k, n in predicted.items() if n > 1][:5]
    finally:
        for worker in (first, second):
            if worker is not None:
                stop_worker(worker)
        delete_namespace(stack.redis_url, group)


def _stop_committed_exactly_what_it_finished(
    stack: Stack, serde: AvroSerde, worker: Worker, group: str, starts: dict[str, list[Any]]
) -> tuple[int, int]:
    """SIGTERM `worker`; then every raw order below the group's committed offsets has its
    clean order, and every clean order below them its prediction, once; none above has one.
    Returns how many raw and clean orders the group has committed."""
    stop_worker(worker)
    assert worker.process.returncode == 0, worker.log_tail()
    raw_start = {tp.partition: tp.offset for tp in starts[RAW_ORDERS]}
    clean_start = {tp.partition: tp.offset for tp in starts[CLEAN_ORDERS]}
    raw_committed = _committed(stack, group, RAW_ORDERS)
    clean_committed = _committed(stack, group, CLEAN_ORDERS)

    clean_messages = _read(stack, starts[CLEAN_ORDERS])
    sources = Counter(
        tuple(int(part) for part in dict(m.headers())[SOURCE_HEADER].decode().split("/"))
        for m in clean_messages
    )
    finished = {(p, o) for p in raw_start for o in range(raw_start[p], raw_committed[p])}
    assert set(sources) == finished
    assert max(sources.values(), default=1) == 1

    scored = Counter(
        str(serde.decode(m.value())["event_id"])
        for m in clean_messages
        if m.offset() < clean_committed[m.partition()]
    )
    predicted = Counter(
        str(serde.decode(m.value())["event_id"]) for m in _read(stack, starts[PREDICTIONS])
    )
    assert predicted == scored
    assert max(predicted.values(), default=1) == 1
    return (
        sum(raw_committed[p] - raw_start[p] for p in raw_start),
        sum(clean_committed[p] - clean_start[p] for p in clean_start),
    )


def test_a_sigterm_commits_the_finished_batches_and_nothing_more(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    run, events = uuid.uuid4().hex[:12], 40_000
    group = new_group(stack)
    starts = _starts(stack)
    orders = _orders(run, events)
    _produce(stack, serde, run, orders, rate=0)  # a backlog, so each stop lands mid-way
    consumed = "streamproc_records_consumed_total"
    # No commit on an interval: what is committed is what each stop committed. The clean
    # stage runs ahead of the scoring one, so the first stop lands mid-way in the raw orders,
    # the second mid-way in the clean ones.
    # At least once: the clean records are visible before the stop commits them.
    no_interval = {"STREAMPROC_COMMIT_INTERVAL_S": "600", "STREAMPROC_DELIVERY": "at-least-once"}
    worker = start_worker(stack, group, tmp_path / "first", **no_interval)
    restarted: list[Worker] = [worker]
    try:
        _wait(lambda: worker.counter(consumed, topic=RAW_ORDERS) >= 5_000, "5,000 raw", worker)
        raw_done, _ = _stop_committed_exactly_what_it_finished(stack, serde, worker, group, starts)
        assert 0 < raw_done < events

        second = start_worker(stack, group, tmp_path / "second", **no_interval)
        restarted.append(second)
        _wait(lambda: second.counter(consumed, topic=CLEAN_ORDERS) >= 5_000, "5,000 clean", second)
        _, clean_done = _stop_committed_exactly_what_it_finished(
            stack, serde, second, group, starts
        )
        assert 0 < clean_done < events

        # a restart goes on from there: each order once, in both topics
        third = start_worker(stack, group, tmp_path / "third")
        restarted.append(third)
        clean, predicted = _all_outputs(stack, serde, run, starts, events, third)
        wanted = {record["event_id"] for record in orders}
        assert set(clean) == wanted and set(predicted) == wanted
        assert max(clean.values()) == 1 and max(predicted.values()) == 1
    finally:
        for running in restarted:
            stop_worker(running)
        delete_namespace(stack.redis_url, group)


def test_a_sigkilled_worker_repeats_nothing_once_restarted(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    """Exactly once: a worker killed mid-stream left a transaction open (outputs of batches
    whose offsets it never committed); its restart (same worker id) aborts it at once and
    processes those batches again: every order is cleaned and predicted once."""
    run, events = uuid.uuid4().hex[:12], 6_000
    group = new_group(stack)
    starts = _starts(stack)
    orders = _orders(run, events)
    same_worker = {"STREAMPROC_WORKER_ID": f"{group}-w1"}
    first = start_worker(stack, group, tmp_path / "first", **same_worker)
    restarted: list[Worker] = [first]
    try:
        producing = threading.Thread(target=_produce, args=(stack, serde, run, orders, 3_000.0))
        producing.start()
        _wait(
            lambda: first.counter("streamproc_records_consumed_total", topic=CLEAN_ORDERS) >= 1000,
            "1,000 clean orders scored",
            first,
        )
        first.process.kill()  # SIGKILL: the open transaction stays open
        first.process.wait()
        producing.join()
        second = start_worker(stack, group, tmp_path / "second", **same_worker)
        restarted.append(second)
        clean, predicted = _all_outputs(stack, serde, run, starts, events, second)
        wanted = {record["event_id"] for record in orders}
        assert set(clean) == wanted and set(predicted) == wanted
        assert max(clean.values()) == 1, [k for k, n in clean.items() if n > 1][:5]
        assert max(predicted.values()) == 1, [k for k, n in predicted.items() if n > 1][:5]
    finally:
        for running in restarted:
            stop_worker(running)
        delete_namespace(stack.redis_url, group)
