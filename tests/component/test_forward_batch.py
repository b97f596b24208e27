"""The processor over a batch: good records forwarded in order, bad ones rejected, never raised."""

from __future__ import annotations

from streamproc.events import Envelope
from streamproc.processor import INTERNAL_ERROR, Route, forward_batch
from streamproc.serde import AvroSerde
from tests.builders import ORDER_SUBMITTED, order
from tests.fakes import ExplodingCodec

ROUTE = Route("shop.order.v1", ORDER_SUBMITTED, "shop.order.clean.v1", ORDER_SUBMITTED)


def _envelope(offset: int, value: bytes | None, key: bytes = b"k") -> Envelope:
    return Envelope(ROUTE.source_topic, 0, offset, key, value, (("h", b"v"),), 1000 + offset)


def test_good_records_are_forwarded_in_order_with_key_headers_and_time(serde: AvroSerde) -> None:
    records = [order(event_id=f"e{i}") for i in range(5)]
    batch = [
        _envelope(i, serde.encode(ROUTE.source_topic, ORDER_SUBMITTED, r))
        for i, r in enumerate(records)
    ]

    result = forward_batch(batch, ROUTE, serde)

    assert result.rejections == []
    assert [serde.decode(out.value, ORDER_SUBMITTED) for out in result.outputs] == records
    assert {out.topic for out in result.outputs} == {"shop.order.clean.v1"}
    assert [out.timestamp_ms for out in result.outputs] == [1000, 1001, 1002, 1003, 1004]
    assert all(out.key == b"k" and out.headers == (("h", b"v"),) for out in result.outputs)


def test_bad_records_are_rejected_and_the_rest_go_on(serde: AvroSerde) -> None:
    good = serde.encode(ROUTE.source_topic, ORDER_SUBMITTED, order())
    batch = [_envelope(0, good), _envelope(1, b"junk"), _envelope(2, good[:-3]), _envelope(3, good)]

    result = forward_batch(batch, ROUTE, serde)

    assert len(result.outputs) == 2
    assert [(r.source.offset, r.reason) for r in result.rejections] == [
        (1, "not_wire_format"),
        (2, "truncated"),
    ]


def test_an_unexpected_error_costs_one_record_not_the_batch(serde: AvroSerde) -> None:
    good = serde.encode(ROUTE.source_topic, ORDER_SUBMITTED, order())
    poison = serde.encode(ROUTE.source_topic, ORDER_SUBMITTED, order(event_id="poison"))
    codec = ExplodingCodec(serde, poison)

    result = forward_batch(
        [_envelope(0, good), _envelope(1, poison), _envelope(2, good)], ROUTE, codec
    )

    assert [out.value for out in result.outputs] == [good, good]
    assert [(r.source.offset, r.reason) for r in result.rejections] == [(1, INTERNAL_ERROR)]
    assert isinstance(result.rejections[0].error, RuntimeError)
