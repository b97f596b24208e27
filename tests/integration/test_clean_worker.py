"""The clean worker on the real broker and Redis: orders cleaned, duplicates audited, bad ones
dead-lettered, with every count in the metrics."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka import dlq
from streamproc.adapters.kafka.admin import end_offsets
from tests.builders import ORDER_SUBMITTED, order
from tests.integration.conftest import (
    RUN_HEADER,
    ProducerHeaders,
    Stack,
    Worker,
    metric,
    read_run,
    recent_timestamp_ms,
)

RAW = "shop.order.v1"
CLEAN = "shop.order.clean.v1"
DUPLICATES = "shop.order.duplicates.v1"
DLQ = "shop.order.v1.dlq"
CLEAN_ORDER = "shop.OrderClean"
EVENTS = 1_000
KEYS = 37


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


def _orders(run: str) -> list[dict[str, Any]]:
    """EVENTS valid orders of KEYS customers; unique content, so none is a duplicate."""
    return [
        order(
            event_id=f"{run}-{sequence}",
            customer_id=f"{run}-c{sequence % KEYS}",
            items=sequence + 1,
            amount=10.0 + sequence,
        )
        for sequence in range(EVENTS)
    ]


def test_orders_are_cleaned_deduplicated_and_bad_records_dead_lettered(
    stack: Stack, worker: Worker, serde: AvroSerde
) -> None:
    run = uuid.uuid4().hex
    starts = {topic: end_offsets(stack.kafka, topic) for topic in (CLEAN, DUPLICATES, DLQ)}
    producer = Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    headers: ProducerHeaders = [(RUN_HEADER, run.encode())]

    def send(key: bytes, value: bytes, timestamp: int = 0) -> None:
        producer.produce(RAW, key=key, value=value, headers=headers, timestamp=timestamp)

    event_time_ms = recent_timestamp_ms()  # odd milliseconds: float seconds must not round them
    orders = _orders(run)
    for sequence, record in enumerate(orders):
        value = serde.encode(RAW, ORDER_SUBMITTED, record)
        send(record["customer_id"].encode(), value, event_time_ms + sequence)
    retries = orders[:3]  # the same id again
    resubmissions = [{**o, "event_id": f"{o['event_id']}-again"} for o in orders[3:5]]
    # logged within the dedupe's times to live of their first (they run between Kafka
    # timestamps, and the first ones are stamped an hour back)
    for record in [*retries, *resubmissions]:
        value = serde.encode(RAW, ORDER_SUBMITTED, record)
        send(record["customer_id"].encode(), value, event_time_ms + EVENTS)
    bad = _corrupted(serde) + _invalid(serde)
    for index, (value, _reason) in enumerate(bad):
        send(f"bad-{index}".encode(), value)
    assert producer.flush(30) == 0

    run_id = run.encode()
    clean = read_run(stack, starts[CLEAN], run_id, EVENTS, timeout_s=90)
    duplicates = read_run(stack, starts[DUPLICATES], run_id, 5, timeout_s=30)
    dead = read_run(stack, starts[DLQ], run_id, len(bad), timeout_s=30)

    assert len(clean) == EVENTS, worker.log_tail()
    received = [serde.decode(message.value(), CLEAN_ORDER) for message in clean]
    assert sorted(r["event_id"] for r in received) == sorted(o["event_id"] for o in orders)
    for record in received:
        assert record["amount_net_eur"] == pytest.approx(record["amount_gross_eur"] / 1.19)
    assert [m.timestamp()[1] for m in clean] == [event_time_ms + r["items"] - 1 for r in received]
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for message, record in zip(clean, received, strict=True):
        assert message.key() == record["entity_key"].encode()
        by_key[message.key()].append(record["items"])
    assert all(items == sorted(items) for items in by_key.values()), "per-key order broken"

    audits = sorted(
        (serde.decode(m.value(), "shop.OrderDuplicate") for m in duplicates),
        key=lambda a: a["event_id"],
    )
    expected_audits = sorted(
        [(o["event_id"], "retry", o["event_id"]) for o in retries]
        + [(o["event_id"] + "-again", "resubmission", o["event_id"]) for o in orders[3:5]]
    )
    assert [(a["event_id"], a["kind"], a["first_event_id"]) for a in audits] == expected_audits

    _check_dead_letters(dead, bad)
    _check_metrics(worker.metrics(), bad)


def test_the_worker_answers_healthz_while_it_runs(worker: Worker) -> None:
    status, report = worker.health()
    assert status == 200
    assert report["status"] == "ok"
    assert report["role"] == "worker"
    assert report["uptime_s"] >= 0


def _invalid(serde: AvroSerde) -> list[tuple[bytes, str]]:
    """Records that decode but cannot be orders."""
    return [
        (serde.encode(RAW, ORDER_SUBMITTED, order(amount=-5.0)), "invalid_amount"),
        (serde.encode(RAW, ORDER_SUBMITTED, order(currency="XYZ")), "unknown_currency"),
    ]


def _check_dead_letters(dead: list[Any], bad: list[tuple[bytes, str]]) -> None:
    assert len(dead) == len(bad)
    expected = {f"bad-{i}".encode(): item for i, item in enumerate(bad)}
    for message in dead:
        headers = dict(message.headers())
        value, reason = expected[message.key()]
        assert (message.value() or b"") == value
        assert headers[dlq.REASON].decode() == reason
        assert headers[dlq.TOPIC] == RAW.encode()
        assert int(headers[dlq.PARTITION]) in range(6)
        assert int(headers[dlq.OFFSET]) >= 0
        assert headers[dlq.EXCEPTION].startswith(b"streamproc.errors.")
        assert headers[dlq.MESSAGE] and headers[dlq.STACKTRACE]


def _check_metrics(metrics: str, bad: list[tuple[bytes, str]]) -> None:
    """The worker's group started at the raw topic's end: it saw this run's records only."""
    for reason in {reason for _value, reason in bad}:
        count = sum(1 for _value, r in bad if r == reason)
        assert metric(metrics, "streamproc_dead_letters_total", reason=reason, topic=RAW) == count
    assert metric(metrics, "streamproc_records_produced_total", topic=CLEAN) == EVENTS
    assert metric(metrics, "streamproc_duplicates_total", kind="retry") == 3
    assert metric(metrics, "streamproc_duplicates_total", kind="resubmission") == 2
    consumed = metric(metrics, "streamproc_records_consumed_total", topic=RAW)
    assert consumed == EVENTS + 5 + len(bad)


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
    assert f"Kafka at {nobody} (PLAINTEXT) did not answer" in result.stderr
