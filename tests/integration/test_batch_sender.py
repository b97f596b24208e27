"""The worker's BatchSender: acked batches, and a clear InfraError when acks do not come."""

from __future__ import annotations

import socket
import uuid

import pytest

from streamproc.adapters.kafka import BatchSender, end_offsets
from streamproc.errors import InfraError
from streamproc.events import OutRecord
from tests.integration.conftest import RUN_HEADER, Stack, read_run, recent_timestamp_ms

TOPIC = "shop.order.duplicates.v1"  # any declared topic: the records carry a run header


async def test_a_batch_arrives_whole_with_keys_headers_and_timestamps(stack: Stack) -> None:
    run = uuid.uuid4().hex.encode()
    start = end_offsets(stack.bootstrap, TOPIC)
    stamped = recent_timestamp_ms()
    records = [
        OutRecord(TOPIC, f"k{i % 7}".encode(), f"v{i}".encode(), ((RUN_HEADER, run),), stamped + i)
        for i in range(300)
    ]
    await BatchSender(stack.bootstrap).send(records)
    got = read_run(stack, start, run, len(records), timeout_s=30)
    assert sorted((m.key(), m.value(), m.timestamp()[1]) for m in got) == sorted(
        (r.key, r.value, r.timestamp_ms) for r in records
    )
    by_key: dict[bytes, list[int]] = {}
    for message in got:
        by_key.setdefault(message.key(), []).append(int(message.value()[1:]))
    assert all(values == sorted(values) for values in by_key.values()), "per-key order"


async def test_unacked_records_raise_infra_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        sender = BatchSender(nobody, ack_timeout_s=1.0)
        with pytest.raises(InfraError, match="1 records not acked"):
            await sender.send([OutRecord(TOPIC, b"k", b"v")])
