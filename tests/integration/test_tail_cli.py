"""`streamproc tail` on the real clean topic and the raw topic's DLQ, as a worker wrote them:
from an offset of one partition, from a time, with filters and --max; dead letters with their
error headers as text and the original value decoded, a value that never decoded as its error
and bytes; and it stops at the ends it saw at start."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka import dlq
from streamproc.adapters.kafka.admin import end_offsets
from streamproc.adapters.kafka.browse import EARLIEST, StartAt, TopicReader
from streamproc.adapters.kafka.producer import make_producer
from streamproc.cli import parser as cli
from streamproc.records import Envelope
from streamproc.scenario.shop import producer_key
from tests.builders import order
from tests.conftest import REPO
from tests.integration.conftest import (
    CLEAN_ORDERS,
    RAW_ORDERS,
    RUN_HEADER,
    Stack,
    Worker,
    own_topic,
    produce_raw_orders,
    read_run,
)

DLQ = dlq.dlq_topic(RAW_ORDERS)


def _tail(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stack: Stack,
    *words: str,
) -> list[dict[str, Any]]:
    monkeypatch.setenv("STREAMPROC_KAFKA_BOOTSTRAP", stack.bootstrap)
    monkeypatch.setenv("STREAMPROC_SCHEMAS_DIR", str(REPO / "schemas"))
    capsys.readouterr()
    assert cli.main(["tail", *words]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_tail_of_the_clean_topic_and_the_dlq_from_an_offset_and_with_filters(
    stack: Stack,
    serde: AvroSerde,
    worker: Worker,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = uuid.uuid4().hex[:10]
    customer = f"it-tail-{run}"  # one key: one partition of each topic
    orders = [
        order(
            event_id=f"{run}-{i}",
            customer_id=customer,
            items=i + 1,
            amount=10.0 + i,
            currency="CHF" if i % 2 else "EUR",
        )
        for i in range(4)
    ]
    unknown_currency = order(event_id=f"{run}-xxx", customer_id=customer, currency="XXX")
    clean_start = end_offsets(stack.kafka, CLEAN_ORDERS)
    dlq_start = end_offsets(stack.kafka, DLQ)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    produce_raw_orders(stack, serde, [*orders, unknown_currency], run=run.encode())
    producer = make_producer(stack.kafka)  # a value that is no Avro at all
    producer.produce(RAW_ORDERS, b"not avro", producer_key(orders[0]), headers=[(RUN_HEADER, run)])
    assert producer.flush(30) == 0

    clean = read_run(stack, clean_start, run.encode(), 4, timeout_s=30)
    dead = read_run(stack, dlq_start, run.encode(), 2, timeout_s=30)
    assert (len(clean), len(dead)) == (4, 2), worker.log_tail()
    partition = clean[0].partition()
    offsets = sorted(message.offset() for message in clean)
    mine = f"--filter=headers.{RUN_HEADER}={run}"

    shown = _tail(
        monkeypatch, capsys, stack, CLEAN_ORDERS,
        "--partition", str(partition), "--from", str(offsets[1]), mine,
    )  # fmt: skip
    assert [line["offset"] for line in shown] == offsets[1:]
    assert [line["value"]["event_id"] for line in shown] == [f"{run}-{i}" for i in (1, 2, 3)]
    assert {line["partition"] for line in shown} == {partition}
    assert shown[0]["headers"][RUN_HEADER] == run and shown[0]["key"] == customer

    here = ("--partition", str(partition), "--from", str(offsets[0]))  # not the whole topic
    chf = _tail(monkeypatch, capsys, stack, CLEAN_ORDERS, *here, "--filter", "value.currency=CHF")
    assert [line["value"]["event_id"] for line in chf] == [f"{run}-1", f"{run}-3"]
    since = _tail(monkeypatch, capsys, stack, CLEAN_ORDERS, "--from", before.isoformat(), mine)
    assert len(since) == 4
    first = _tail(
        monkeypatch, capsys, stack, CLEAN_ORDERS, "--from", before.isoformat(), mine, "--max", "1"
    )
    assert [line["value"]["event_id"] for line in first] == [f"{run}-0"]

    first_dead = min(message.offset() for message in dead)
    dead_here = ("--partition", str(dead[0].partition()), "--from", str(first_dead))
    letters = _tail(monkeypatch, capsys, stack, DLQ, *dead_here, mine)
    reasons = {line["headers"][dlq.REASON]: line for line in letters}
    assert set(reasons) == {"unknown_currency", "not_wire_format"}
    decoded = reasons["unknown_currency"]
    assert decoded["value"]["event_id"] == f"{run}-xxx" and decoded["value"]["currency"] == "XXX"
    assert decoded["headers"][dlq.TOPIC] == RAW_ORDERS
    assert decoded["headers"][dlq.MESSAGE] == "no rate to EUR for 'XXX'"
    assert "Traceback" in decoded["headers"][dlq.STACKTRACE]
    undecoded = reasons["not_wire_format"]
    assert undecoded["value"] is None
    assert undecoded["error"].startswith("not_wire_format: ")
    assert base64.b64decode(undecoded["value_base64"]) == b"not avro"

    only = _tail(
        monkeypatch,
        capsys,
        stack,
        DLQ,
        *dead_here,
        "--filter",
        f"headers.{dlq.REASON}=unknown_currency",
    )
    assert [line["value"]["event_id"] for line in only] == [f"{run}-xxx"]  # not the bytes


def test_a_read_stops_at_the_ends_it_saw_when_it_opened(stack: Stack, tmp_path: Path) -> None:
    """Records that arrive after the read began are not read, unless it follows."""
    with own_topic(stack, tmp_path, "it.tail", "partitions: 1\nretention_ms: 3600000\n") as topic:
        _send(stack, topic, [b"1", b"2"])
        bounded = TopicReader(stack.kafka, topic, 15)
        following = TopicReader(stack.kafka, topic, 15)
        bounded.open(bounded.offsets(EARLIEST))
        following.open(following.offsets(StartAt("offset", 1)), follow=True)
        _send(stack, topic, [b"3"])  # after both began
        assert [record.value for record in _read_all(bounded)] == [b"1", b"2"]
        assert [record.value for record in _read_until(following, 2)] == [b"2", b"3"]
        assert not following.finished
        bounded.close()
        following.close()


def _send(stack: Stack, topic: str, values: list[bytes]) -> None:
    producer = make_producer(stack.kafka)
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0


def _read_all(reader: TopicReader) -> list[Envelope]:
    records: list[Envelope] = []
    deadline = time.monotonic() + 30
    while not reader.finished and time.monotonic() < deadline:
        time.sleep(0.5)  # the third record is there to be fetched if the reader would
        records.extend(reader.read())
    assert reader.finished
    return records


def _read_until(reader: TopicReader, count: int) -> list[Envelope]:
    records: list[Envelope] = []
    deadline = time.monotonic() + 30
    while len(records) < count and time.monotonic() < deadline:
        records.extend(reader.read())
    return records
