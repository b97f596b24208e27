"""What the service logs: JSON lines on request, a line per dead letter with its event id and
no personal data, and a start-up line that states the delivery guarantee."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from collections.abc import Iterator

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.dlq import log_dead_letters
from streamproc.adapters.logs import JsonFormatter, logging_config
from streamproc.adapters.memory import InMemorySeenStore, InMemoryUnitStatsStore
from streamproc.config.pipeline import load_pipeline
from streamproc.config.settings import load_settings
from streamproc.records import Envelope
from streamproc.stages.clean import CleanStage
from streamproc.worker.wiring import connections_summary, delivery_summary
from tests.builders import ORDER_SUBMITTED, order
from tests.conftest import REPO

RAW = "shop.order.v1"


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "streamproc.x", "levelname": "WARNING", "msg": message})
    record.args = args
    record.__dict__.update(extra)
    return record


def test_a_json_line_holds_the_message_and_the_calls_extra_fields() -> None:
    line = json.loads(JsonFormatter().format(_record("%d late", 3, reason="late", offset=7)))
    assert line["message"] == "3 late"
    assert (line["level"], line["logger"]) == ("warning", "streamproc.x")
    assert (line["reason"], line["offset"]) == ("late", 7)
    assert line["time"].endswith("+00:00")
    assert "msg" not in line and "args" not in line  # the record's own fields stay out


def test_a_json_line_carries_the_exception_and_writes_odd_values_as_text() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed", what=object)
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["exception"]
    assert line["what"] == "<class 'object'>"


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines into a buffer, as STREAMPROC_LOG_FORMAT=json does."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logging.config.dictConfig(logging_config("info", True, "ext://sys.stderr", ""))
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_every_dead_letter_is_logged_with_its_event_id_and_no_personal_data(
    serde: AvroSerde, logged: io.StringIO
) -> None:
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    stage = CleanStage(spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"key")
    bad = order(event_id="e-bad", customer_name="Grace Hopper", email="grace@navy.mil", amount=-5)
    batch = [
        Envelope(RAW, 2, 40, b"k", serde.encode(RAW, ORDER_SUBMITTED, bad)),
        Envelope(RAW, 2, 41, b"k", b"not avro"),
    ]
    result = await stage.process(batch)
    log_dead_letters(result.rejections)
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    assert [(x["reason"], x["event_id"], x["offset"]) for x in lines] == [
        ("invalid_amount", "e-bad", 40),
        ("not_wire_format", None, 41),
    ]
    assert all((x["topic"], x["partition"]) == (RAW, 2) for x in lines)
    text = logged.getvalue()
    assert "Grace" not in text and "grace@navy.mil" not in text and "-5" not in text


def test_the_start_up_lines_state_the_guarantee_and_the_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exactly = delivery_summary(load_settings())
    assert "exactly once" in exactly and "read_committed" in exactly
    assert "Redis state effectively once" in exactly and "Not covered" in exactly
    monkeypatch.setenv("STREAMPROC_DELIVERY", "at-least-once")
    least = delivery_summary(load_settings())
    assert "at least once" in least and "sent again" in least
    assert "(PLAINTEXT)" in connections_summary(load_settings())
