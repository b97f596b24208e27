"""Dead letters keep the original record and add Kafka Streams' error headers (KIP-1034)."""

from __future__ import annotations

from streamproc.adapters import dlq
from streamproc.errors import DecodeError
from streamproc.events import Envelope, Rejection


def _rejection(headers: tuple[tuple[str, bytes], ...] = ()) -> Rejection:
    try:
        raise DecodeError("truncated", "the Avro body ends early")
    except DecodeError as error:
        source = Envelope(
            "shop.order.v1", 4, 1234, b"key", b"\x00bytes", headers, 1_700_000_000_000
        )
        return Rejection(source, error.reason, error)


def test_dead_letter_keeps_key_value_headers_and_timestamp() -> None:
    record = dlq.dead_letter(_rejection(headers=(("trace", b"abc"),)))
    assert record.topic == "shop.order.v1.dlq"
    assert (record.key, record.value, record.timestamp_ms) == (
        b"key",
        b"\x00bytes",
        1_700_000_000_000,
    )
    assert record.headers[0] == ("trace", b"abc")


def test_dead_letter_says_why_and_where() -> None:
    headers = dict(dlq.dead_letter(_rejection()).headers)
    assert headers[dlq.REASON] == b"truncated"
    assert headers[dlq.EXCEPTION] == b"streamproc.errors.DecodeError"
    assert headers[dlq.MESSAGE] == b"the Avro body ends early"
    assert b"raise DecodeError" in headers[dlq.STACKTRACE]
    assert (headers[dlq.TOPIC], headers[dlq.PARTITION], headers[dlq.OFFSET]) == (
        b"shop.order.v1",
        b"4",
        b"1234",
    )


def test_a_dead_letter_failing_again_carries_one_set_of_error_headers() -> None:
    first = dlq.dead_letter(_rejection())
    again = dlq.dead_letter(_rejection(headers=tuple(first.headers)))
    names = [name for name, _ in again.headers]
    assert names.count(dlq.REASON) == 1
    assert names.count(dlq.STACKTRACE) == 1
