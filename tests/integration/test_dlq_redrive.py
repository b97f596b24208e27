"""`streamproc dlq redrive` end to end, on the real broker with real workers.

What is fixed upstream here is a declaration: a worker runs a pipeline that lacks the Swiss
franc's rate to EUR, as a shop that starts selling in CHF before its declaration says so, and
its CHF orders go to the DLQ as `unknown_currency`. The fix is the full declaration, in a new
worker of the same deployment. Re-driven, each of those orders comes out clean exactly once
(read `read_committed`), marked as re-driven and counted by the worker; a second re-drive, and
one for every reason after it, send nothing; a dry run before sends and commits nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka import dlq
from streamproc.adapters.kafka.admin import end_offsets, start_group_at
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.cli import parser as cli
from tests.builders import order
from tests.conftest import REPO
from tests.integration.conftest import (
    CLEAN_ORDERS,
    RAW_ORDERS,
    Stack,
    Worker,
    new_group,
    produce_raw_orders,
    read_run,
    start_worker,
    stop_worker,
)

DLQ = dlq.dlq_topic(RAW_ORDERS)
REASON = "unknown_currency"
CHF_ORDERS = 6


def _pipeline_without_chf(folder: Path) -> Path:
    text = (REPO / "pipelines/shop_orders.yaml").read_text()
    lacking = text.replace(" CHF: 1.07,", "")
    assert lacking != text, "the reference pipeline's CHF rate moved: update this test"
    path = folder / "shop_orders_without_chf.yaml"
    path.write_text(lacking)
    return path


def _orders(run: str) -> list[dict[str, Any]]:
    """CHF orders, and two in EUR that are clean from the start; each of its own content."""
    return [
        order(
            event_id=f"{run}-{i}",
            customer_id=f"{run}-c{i % 3}",
            currency="CHF" if i < CHF_ORDERS else "EUR",
            amount=20.0 + i,
            items=i + 1,
        )
        for i in range(CHF_ORDERS + 2)
    ]


def _redrive(
    capsys: pytest.CaptureFixture[str], group: str, *options: str
) -> tuple[str, list[dict[str, Any]]]:
    """The command's summary lines, and the JSON lines of a dry run."""
    assert cli.main(["dlq", "redrive", RAW_ORDERS, "--group", group, *options]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = [json.loads(line) for line in lines if line.startswith("{")]
    return "\n".join(line for line in lines if not line.startswith("{")), shown


def _until(check: Any, worker: Worker, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.3)


def test_dead_letters_come_out_clean_exactly_once_after_the_fix(
    stack: Stack,
    serde: AvroSerde,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = uuid.uuid4().hex[:10]
    group = new_group(stack)
    redrive_group = f"it-redrive-{run}"
    for position in (redrive_group, f"{redrive_group}.{REASON}"):  # not older dead letters
        start_group_at(stack.kafka, position, end_offsets(stack.kafka, DLQ))
    monkeypatch.setenv("STREAMPROC_KAFKA_BOOTSTRAP", stack.bootstrap)
    monkeypatch.setenv("STREAMPROC_SCHEMAS_DIR", str(REPO / "schemas"))
    orders = _orders(run)
    chf = {o["event_id"] for o in orders if o["currency"] == "CHF"}
    try:
        lacking = start_worker(
            stack, group, tmp_path / "a", STREAMPROC_PIPELINE=str(_pipeline_without_chf(tmp_path))
        )
        clean_start = end_offsets(stack.kafka, CLEAN_ORDERS)
        dlq_start = end_offsets(stack.kafka, DLQ)
        produce_raw_orders(stack, serde, orders, run=run.encode())
        dead = read_run(stack, dlq_start, run.encode(), CHF_ORDERS, timeout_s=30)
        clean = read_run(stack, clean_start, run.encode(), 2, timeout_s=30)
        assert {serde.decode(m.value())["event_id"] for m in dead} == chf, lacking.log_tail()
        assert {dict(m.headers())[dlq.REASON] for m in dead} == {REASON.encode()}
        assert len(clean) == 2
        stop_worker(lacking)

        fixed = start_worker(stack, group, tmp_path / "b")
        after_fix = end_offsets(stack.kafka, CLEAN_ORDERS)
        summary, would = _redrive(capsys, redrive_group, "--reason", REASON, "--dry-run")
        assert f"would re-send {CHF_ORDERS} dead letters of {DLQ}" in summary
        assert {line["reason"] for line in would} == {REASON}
        assert len(would) == CHF_ORDERS and {line["to"] for line in would} == {RAW_ORDERS}

        summary, _ = _redrive(capsys, redrive_group, "--reason", REASON)
        assert (
            f"re-drove {CHF_ORDERS} dead letters of {DLQ}: {CHF_ORDERS} to {RAW_ORDERS}" in summary
        )
        _until(
            lambda: (
                fixed.counter("streamproc_redriven_records_total", topic=RAW_ORDERS) == CHF_ORDERS
            ),
            fixed,
        )
        redriven = read_run(stack, after_fix, run.encode(), CHF_ORDERS + 1, timeout_s=5)
        ids = [serde.decode(m.value())["event_id"] for m in redriven]
        assert sorted(ids) == sorted(chf), fixed.log_tail()  # each once, none before the fix
        markers = {dict(m.headers())[dlq.REDRIVE].decode() for m in redriven}
        assert markers == {f"{DLQ}/{m.partition()}/{m.offset()}" for m in dead}

        summary, _ = _redrive(capsys, redrive_group, "--reason", REASON)
        assert f"re-drove 0 dead letters of {DLQ}" in summary
        summary, _ = _redrive(capsys, redrive_group)  # every reason: these were re-sent
        assert f"re-drove 0 dead letters of {DLQ}" in summary
        assert f"passed over {CHF_ORDERS}: {CHF_ORDERS} redriven_before" in summary
        again = read_run(stack, after_fix, run.encode(), CHF_ORDERS + 1, timeout_s=3)
        assert len(again) == CHF_ORDERS
        stop_worker(fixed)
    finally:
        delete_namespace(stack.redis_url, group)
