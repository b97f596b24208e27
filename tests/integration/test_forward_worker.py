"""The worker on the real broker: 1,000 orders reach the clean topic, 10 bad records the DLQ."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from streamproc.adapters import dlq
from streamproc.serde import AvroSerde
from tests.builders import ORDER_SUBMITTED, order
from tests.integration.conftest import Stack, Worker, end_offsets

RAW = "shop.order.v1"
CLEAN = "shop.order.clean.v1"
RUN_HEADER = "test.run"
EVENTS = 1_000
KEYS = 37
EVENT_TIME_MS = 1_774_746_000_001  # odd milliseconds: float seconds must not round them away


def _corrupted(serde: AvroSerde) -> list[tuple[bytes, str]]:
    """Ten bad values, each with the reason the worker must give for it."""
    good = serde.encode(RAW, ORDER_SUBMITTED, order())
    outcome = serde.encode(
        "shop.order_outcome.v1",
        "shop.OrderOutcome",
        {"event_id": "x", "is_fraud": True, "occurred_at": 1},
    )
    unknown_id = struct.pack(">bI", 0, 2_000_000_001) + good[5:]
    return [
        (b"", "not_wire_format"),
        (b'{"event_id": "json"}', "not_wire_format"),
        (b"\x01" + good[1:], "not_wire_format"),
        (unknown_id, "unknown_schema_id"),
        (unknown_id[:-4], "unknown_schema_id"),
        (good[:5], "truncated"),
        (good[: len(good) // 2], "truncated"),
        (good[:-1], "truncated"),
        (outcome, "schema_mismatch"),
        (good + b"\x00\x00", "schema_mismatch"),
    ]


def _consume_run(
    stack: Stack, start: list[TopicPartition], run: bytes, expected: int, timeout_s: float
) -> list[Any]:
    """Records from `start` on that carry this run's header, until `expected` are seen."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": f"it-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign(start)
    found = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                assert message.error() is None, message.error()
                if (RUN_HEADER, run) in (message.headers() or []):
                    found.append(message)
    finally:
        consumer.close()
    return found


def _counter(metrics: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_orders_are_forwarded_and_bad_records_dead_lettered(
    stack: Stack, worker: Worker, serde: AvroSerde
) -> None:
    run = uuid.uuid4().hex.encode()
    clean_start = end_offsets(stack.bootstrap, CLEAN)
    dlq_start = end_offsets(stack.bootstrap, f"{RAW}.dlq")
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    sent: dict[str, dict[str, Any]] = {}
    for sequence in range(EVENTS):
        record = order(event_id=f"{run.decode()}-{sequence}", items=sequence)
        sent[record["event_id"]] = record
        producer.produce(
            RAW,
            key=f"customer-{sequence % KEYS}".encode(),
            value=serde.encode(RAW, ORDER_SUBMITTED, record),
            headers=[(RUN_HEADER, run)],
            timestamp=EVENT_TIME_MS + sequence,
        )
    bad = _corrupted(serde)
    for index, (value, _reason) in enumerate(bad):
        producer.produce(RAW, key=f"bad-{index}".encode(), value=value, headers=[(RUN_HEADER, run)])
    assert producer.flush(30) == 0

    clean = _consume_run(stack, clean_start, run, EVENTS, timeout_s=90)
    dead = _consume_run(stack, dlq_start, run, len(bad), timeout_s=30)

    assert len(clean) == EVENTS, worker.log_tail()
    received = [serde.decode(message.value(), ORDER_SUBMITTED) for message in clean]
    assert {r["event_id"]: r for r in received} == sent
    assert [m.timestamp()[1] for m in clean] == [EVENT_TIME_MS + r["items"] for r in received]
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for message, record in zip(clean, received, strict=True):
        by_key[message.key()].append(record["items"])
    assert all(items == sorted(items) for items in by_key.values()), "per-key order broken"

    assert len(dead) == len(bad), worker.log_tail()
    expected = {key: (value, reason) for key, (value, reason) in
                ((f"bad-{i}".encode(), item) for i, item in enumerate(bad))}  # fmt: skip
    for message in dead:
        headers = dict(message.headers())
        value, reason = expected[message.key()]
        assert (message.value() or b"") == value
        assert headers[dlq.REASON].decode() == reason
        assert headers[dlq.TOPIC] == RAW.encode()
        assert int(headers[dlq.PARTITION]) in range(6)
        assert int(headers[dlq.OFFSET]) >= 0
        assert headers[dlq.EXCEPTION] == b"streamproc.errors.DecodeError"
        assert headers[dlq.MESSAGE] and headers[dlq.STACKTRACE]

    # The worker's group started at the raw topic's end, so it saw this run's records only.
    metrics = worker.metrics()
    for reason in {reason for _value, reason in bad}:
        count = sum(1 for _value, r in bad if r == reason)
        assert _counter(metrics, "streamproc_dead_letters_total", reason=reason, topic=RAW) == count
    assert _counter(metrics, "streamproc_records_produced_total", topic=CLEAN) == EVENTS
    assert _counter(metrics, "streamproc_records_consumed_total", topic=RAW) == EVENTS + len(bad)


def test_worker_without_a_broker_exits_3_with_the_address(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        env = {
            **os.environ,
            "STREAMPROC_KAFKA_BOOTSTRAP": nobody,
            "STREAMPROC_KAFKA_TIMEOUT_S": "2",
            "STREAMPROC_DATA_DIR": str(tmp_path),
        }
        result = subprocess.run(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "streamproc.cli", "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 3, result.stderr
    assert f"Kafka at {nobody} did not answer" in result.stderr
