"""What `streamproc dlq` makes of dead letters without a broker: the record a re-drive sends
for one (or why it cannot), the DLQ's summary by reason and origin with its samples, and the
worker's count of re-driven records."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka import dlq
from streamproc.adapters.metrics import StageMetrics
from streamproc.records import Envelope, Rejection
from streamproc.stages.clean import CleanOutcome
from streamproc.tools.dlq_summary import DlqSummary
from streamproc.tools.record_view import record_view
from streamproc.tools.top.render import plain_section
from tests.builders import ORDER_SUBMITTED, order

RAW = "shop.order.v1"


def _dead_letter(reason: str = "unknown_currency", offset: int = 5, **kwargs: Any) -> Envelope:
    """A dead letter as the worker writes it, at `offset` of the DLQ's partition 2."""
    source = Envelope(RAW, 1, 100 + offset, b"C1", b"value", (("test.run", b"r"),), 1_000 + offset)
    error = ValueError("no rate to EUR for 'TRY'\nsecond line")
    letter = dlq.dead_letter(Rejection(source, reason, error), **kwargs)
    return Envelope(
        letter.topic, 2, offset, letter.key, letter.value, letter.headers, letter.timestamp_ms
    )


def test_a_dead_letter_goes_back_to_its_source_with_its_key_value_and_headers() -> None:
    again = dlq.redriven(_dead_letter())
    assert not isinstance(again, str)
    assert (again.topic, again.key, again.value) == (RAW, b"C1", b"value")
    assert again.headers == (("test.run", b"r"), (dlq.REDRIVE, b"shop.order.v1.dlq/2/5"))
    assert again.timestamp_ms is None  # the broker stamps it when it is re-sent


def test_a_dead_letter_re_driven_twice_carries_one_marker() -> None:
    first = dlq.redriven(_dead_letter())
    assert not isinstance(first, str)
    failed_again = Envelope(RAW, 1, 900, first.key, first.value, first.headers, 2_000)
    letter = dlq.dead_letter(Rejection(failed_again, "unknown_currency", ValueError("again")))
    again = dlq.redriven(Envelope(letter.topic, 0, 77, letter.key, letter.value, letter.headers))
    assert not isinstance(again, str)
    assert [value for name, value in again.headers if name == dlq.REDRIVE] == [
        b"shop.order.v1.dlq/0/77"
    ]


def test_what_cannot_be_re_driven_says_why() -> None:
    assert dlq.redriven(_dead_letter(max_bytes=200)) == dlq.VALUE_DROPPED
    assert dlq.redriven(Envelope(f"{RAW}.dlq", 0, 1, b"k", b"v")) == dlq.NOT_A_DEAD_LETTER


def test_the_dlq_of_a_topic_or_of_a_dlq() -> None:
    assert dlq.dlq_of(RAW) == "shop.order.v1.dlq"
    assert dlq.dlq_of("shop.order.v1.dlq") == "shop.order.v1.dlq"


def test_the_summary_counts_by_reason_and_origin_with_first_last_and_samples(
    serde: AvroSerde,
) -> None:
    summary = DlqSummary("shop.order.v1.dlq", samples=2)
    for offset in (3, 1, 2):
        summary.add(record_view(_dead_letter(offset=offset), serde.decode))
    summary.add(record_view(_dead_letter("truncated", offset=9), serde.decode))
    summary.add(record_view(Envelope("shop.order.v1.dlq", 0, 10, None, None), serde.decode))
    report = summary.as_json()
    assert report["dead_letters"] == 5
    assert list(report["reasons"]) == ["unknown_currency", "truncated", "unknown"]
    currency = report["reasons"]["unknown_currency"]
    assert currency["count"] == 3
    assert (currency["first"], currency["last"]) == (
        "1970-01-01T00:00:01.001Z",
        "1970-01-01T00:00:01.003Z",
    )
    assert [sample["offset"] for sample in currency["samples"]] == [3, 1]
    assert report["origins"] == [
        {"source_topic": RAW, "exception": "builtins.ValueError", "count": 4},
        {"source_topic": "unknown", "exception": "unknown", "count": 1},
    ]
    tables = "\n".join(plain_section(section) for section in summary.sections())
    assert re.search(r"^  unknown_currency +3 +1970-01-01T00:00:01.001Z", tables, re.M)
    assert "2/3" in tables and "no rate to EUR for 'TRY'" in tables
    assert "second line" not in tables  # a message's first line only


def test_an_empty_dlq_reads_as_none() -> None:
    summary = DlqSummary("t.dlq")
    assert summary.as_json() == {"topic": "t.dlq", "dead_letters": 0, "reasons": {}, "origins": []}
    assert plain_section(summary.sections()[0]).startswith("t.dlq: 0 dead letters")


def _counted(metrics: StageMetrics, name: str) -> dict[str, float]:
    text = metrics.exposition().decode()
    return {
        sample.labels["topic"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


@pytest.mark.parametrize("headers_first", [True, False])
def test_the_worker_counts_the_re_driven_records_it_reads(
    serde: AvroSerde, headers_first: bool
) -> None:
    value = serde.encode(RAW, ORDER_SUBMITTED, order())
    marked = ((dlq.REDRIVE, b"shop.order.v1.dlq/0/1"), ("other", b"x"))
    batch = [
        Envelope(RAW, 0, i, b"k", value, marked if headers_first else marked[::-1])
        for i in range(3)
    ]
    batch += [Envelope(RAW, 0, 3, b"k", value), Envelope(RAW, 0, 4, b"k", value, (("a", b"b"),))]
    metrics = StageMetrics()
    metrics.observe_batch(RAW, batch, CleanOutcome(), 0.01)
    assert _counted(metrics, "streamproc_redriven_records_total") == {RAW: 3}
    assert _counted(metrics, "streamproc_records_consumed_total") == {RAW: 5}
