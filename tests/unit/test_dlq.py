"""Dead letters keep the original record and add Kafka Streams' error headers (KIP-1034)."""

from __future__ import annotations

from streamproc.adapters.kafka import dlq
from streamproc.errors import DecodeError
from streamproc.records import Envelope, Rejection


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


def _rejected(
    error: Exception, value: bytes | None = b"\x00bytes", key: bytes = b"key"
) -> Rejection:
    try:
        raise error
    except Exception as raised:
        source = Envelope("shop.order.v1", 4, 1234, key, value, (("trace", b"abc"),), 17)
        return Rejection(source, "invalid_country", raised)


def test_an_error_quoting_a_huge_value_is_cut_in_the_headers() -> None:
    huge = "X" * 1_000_000
    record = dlq.dead_letter(_rejected(ValueError(f"country {huge!r} is not ISO")))
    headers = dict(record.headers)
    assert len(headers[dlq.MESSAGE]) <= dlq.MESSAGE_MAX_BYTES
    assert headers[dlq.MESSAGE].startswith(b"country 'XXX")
    assert headers[dlq.MESSAGE].endswith(b" ... [cut 995,973 of 1,000,021 bytes]")
    trace = headers[dlq.STACKTRACE]
    assert len(trace) <= dlq.STACKTRACE_MAX_BYTES
    assert b"raise error" in trace  # the frames survive the cut
    assert b"ValueError: country 'XXX" in trace
    assert sum(len(name) + len(value) for name, value in record.headers) < 16_000


def test_a_chained_error_keeps_both_traces_when_the_first_message_is_huge() -> None:
    try:
        try:
            raise KeyError("k" * 100_000)
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as error:
        source = Envelope("shop.order.v1", 0, 1, None, b"v")
        trace = dict(dlq.dead_letter(Rejection(source, "internal_error", error)).headers)[
            dlq.STACKTRACE
        ]
    assert len(trace) <= dlq.STACKTRACE_MAX_BYTES
    assert b"KeyError: 'kkk" in trace
    assert b"ValueError: outer" in trace


def test_cut_text_stays_valid_utf8() -> None:
    cut = dlq.bounded("é" * 10_000, 1_001)
    assert len(cut) <= 1_001
    assert cut.decode().startswith("éé")
    assert dlq.bounded("\udcff lone surrogate", 100) == b"\\udcff lone surrogate"


def test_a_dead_letter_that_fits_keeps_the_value() -> None:
    value = b"v" * 900_000
    record = dlq.dead_letter(_rejected(ValueError(repr(value)), value))
    assert record.value == value
    assert dlq.DROPPED not in dict(record.headers)
    assert dlq.wire_size(record) <= dlq.MAX_RECORD_BYTES


def test_a_dead_letter_too_large_for_the_limit_keeps_a_reference() -> None:
    value = b"v" * 3_000_000
    record = dlq.dead_letter(_rejected(ValueError(repr(value)), value))
    headers = dict(record.headers)
    assert record.value is None
    assert (record.key, headers["trace"], record.timestamp_ms) == (b"key", b"abc", 17)
    assert headers[dlq.DROPPED] == b"value"
    assert (headers[dlq.TOPIC], headers[dlq.PARTITION], headers[dlq.OFFSET]) == (
        b"shop.order.v1",
        b"4",
        b"1234",
    )
    assert dlq.wire_size(record) <= dlq.MAX_RECORD_BYTES


def test_a_dead_letter_with_a_huge_key_keeps_only_the_reference() -> None:
    record = dlq.dead_letter(_rejected(ValueError("bad"), b"v" * 10, key=b"k" * 2_000_000))
    headers = dict(record.headers)
    assert (record.key, record.value, "trace" in headers) == (None, None, False)
    assert headers[dlq.DROPPED] == b"value,key,headers"
    assert headers[dlq.OFFSET] == b"1234"


def test_a_reference_is_a_dead_letter_without_the_record() -> None:
    record = dlq.reference(_rejected(ValueError("bad")))
    headers = dict(record.headers)
    assert (record.key, record.value) == (None, None)
    assert (headers[dlq.REASON], headers[dlq.DROPPED]) == (b"invalid_country", b"value,key,headers")


def test_a_reference_failing_again_loses_its_dropped_header() -> None:
    first = dlq.dead_letter(_rejected(ValueError("bad"), b"v" * 2_000_000))
    again = dlq.dead_letter(_rejection(headers=tuple(first.headers)))
    assert dlq.DROPPED not in dict(again.headers)
