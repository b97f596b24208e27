"""The examples, run as a user runs them against the stack: examples/send_orders.py sends orders
(and shows an InvalidRecord and a DeliveryFailed), a worker scores them, and
examples/read_predictions.py prints their predictions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from examples import read_predictions, send_orders
from streamproc.adapters.kafka.admin import end_offsets, start_group_at
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.producer import PREDICTIONS_TOPIC
from tests.conftest import REPO
from tests.integration.conftest import Stack, new_group, start_worker, stop_worker

ORDERS = 4


def test_orders_sent_by_the_example_are_scored_and_read_back_by_the_other(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {
        "STREAMPROC_KAFKA_BOOTSTRAP": stack.bootstrap,
        "STREAMPROC_SCHEMAS_DIR": str(REPO / "schemas"),
        "STREAMPROC_PIPELINE": str(REPO / "pipelines/shop_orders.yaml"),
    }.items():
        monkeypatch.setenv(name, value)
    group = new_group(stack)
    readers = f"{group}-readers"  # from here on: this test's predictions only
    start_group_at(stack.kafka, readers, end_offsets(stack.kafka, PREDICTIONS_TOPIC))
    worker = start_worker(stack, group, tmp_path)
    try:
        assert send_orders.main(["--orders", str(ORDERS)]) == 0
        said = capsys.readouterr().out
        sent = re.findall(r"^sending order (\S+)$", said, re.MULTILINE)
        assert len(sent) == ORDERS
        assert (
            len(re.findall(r"^delivered: partition \d+, offset \d+$", said, re.MULTILINE)) == ORDERS
        )
        assert "refused: not a valid shop.OrderSubmitted v1: items: expected int, got str" in said
        assert re.search(r"^failed: shop\.order\.v1: not delivered: MSG_SIZE_TOO_LARGE", said, re.M)

        reading = ["--group", readers, "--limit", str(ORDERS), "--idle-timeout", "45"]
        assert read_predictions.main(reading) == 0
        printed = re.findall(
            r"^(\S+)  fraud (\d\.\d{3})  logreg v\d+", capsys.readouterr().out, re.M
        )
        assert sorted(event_id for event_id, _score in printed) == sorted(sent)
    finally:
        stop_worker(worker)
        delete_namespace(stack.redis_url, group)
