"""The unit-switch detector's state outlives a worker: the worker that takes over a deployment
(a restart, a rebalance) judges app v5's seconds as its predecessor learned to, from the
first order, on the real broker and Redis."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets
from streamproc.adapters.redis.sweep import delete_namespace
from tests.builders import order
from tests.integration.conftest import (
    Stack,
    new_group,
    produce_raw_orders,
    read_run,
    start_worker,
    stop_worker,
)

RAW = "shop.order.v1"
CLEAN = "shop.order.clean.v1"


def _app_orders(
    run: str, version: int, sessions_s: list[float], start: int
) -> list[dict[str, Any]]:
    """App orders with sessions in ms (v4, as declared) or silently in seconds (v5)."""
    at_s = int(time.time()) - 3_600
    return [
        order(
            event_id=f"{run}-{start + i}", source="app", customer_id=f"{run}-c{start + i}",
            email=None, occurred_at=at_s + i, amount=10.0 + start + i, amount_includes_tax=None,
            tax_rate=0.19, app_version=version,
            session_duration=round(seconds * 1000) if version == 4 else seconds,
        )
        for i, seconds in enumerate(sessions_s)
    ]  # fmt: skip


def test_a_restarted_worker_converts_app_v5_from_its_first_order(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    rng = random.Random(5)
    run, group = uuid.uuid4().hex, new_group(stack)
    sessions = [10 ** rng.uniform(0.3, 2.78) for _ in range(230)]  # 2 s to 10 minutes
    v4, v5 = _app_orders(run, 4, sessions[:200], 0), _app_orders(run, 5, sessions[200:], 200)
    try:
        first = start_worker(stack, group, tmp_path / "first")
        start = end_offsets(stack.kafka, CLEAN)
        produce_raw_orders(stack, serde, v4, run.encode())
        learned = read_run(stack, start, run.encode(), len(v4), timeout_s=90)
        assert len(learned) == len(v4), first.log_tail()
        stop_worker(first)

        successor = start_worker(stack, group, tmp_path / "successor")
        start = end_offsets(stack.kafka, CLEAN)
        produce_raw_orders(stack, serde, v5, run.encode())
        found = read_run(stack, start, run.encode(), len(v5), timeout_s=90)
        stop_worker(successor)
        assert len(found) == len(v5), successor.log_tail()
        clean = {
            r["event_id"]: r for r in (serde.decode(m.value(), "shop.OrderClean") for m in found)
        }
        for sent in v5:
            got = clean[sent["event_id"]]
            assert "unit_switch_suspected" in got["quality_flags"], got
            assert got["quality_flags"].count("unit_converted") == 1
            assert got["session_duration_s"] == pytest.approx(sent["session_duration"])
    finally:
        delete_namespace(stack.redis_url, group)
