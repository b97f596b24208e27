"""Poison input through the clean stage (real serde, in-memory stores): every class of bad record
ends in the DLQ with its reason and Kafka Streams' error headers (KIP-1034), or comes out clean
with its quality flags; a claimed size allocates nothing like it."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import pytest

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka import dlq
from streamproc.adapters.memory import InMemorySeenStore, InMemoryUnitStatsStore
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.errors import DecodeError
from streamproc.records import Envelope, Rejection
from streamproc.stages.clean import CleanOutcome, CleanStage
from tests.conftest import REPO
from tests.poison import CLEANED, MB, POISON, RAW_TOPIC, Poison, Wire, zigzag

DECODE_REASONS = {"not_wire_format", "unknown_schema_id", "truncated", "schema_mismatch"}
# The dead-letter headers of KIP-1034, spelled out: the constants in dlq.py must keep them.
KIP_1034 = {
    "__streams.errors.exception",
    "__streams.errors.message",
    "__streams.errors.stacktrace",
    "__streams.errors.topic",
    "__streams.errors.partition",
    "__streams.errors.offset",
}


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return load_pipeline(REPO / "pipelines/shop_orders.yaml")


@pytest.fixture(scope="module")
def wire(serde: AvroSerde, catalog: SchemaCatalog) -> Wire:
    return Wire(serde, catalog)


async def _through_stage(spec: PipelineSpec, serde: AvroSerde, value: bytes | None) -> CleanOutcome:
    stage = CleanStage(spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"pii-key")
    envelope = Envelope(RAW_TOPIC, 3, 77, b"key", value, (("trace", b"t-1"),), 1_700_000_000_000)
    return await stage.process([envelope])


def _params(cases: list[Poison]) -> list[object]:
    return [pytest.param(case, id=case.name) for case in cases]


@pytest.mark.parametrize("case", _params([case for case in POISON if case.reason]))
async def test_a_poison_record_goes_to_the_dlq_with_its_reason_and_error_headers(
    spec: PipelineSpec, serde: AvroSerde, wire: Wire, case: Poison
) -> None:
    result = await _through_stage(spec, serde, case.build(wire))
    assert (result.clean, result.duplicates) == ([], [])
    (rejection,) = result.rejections
    assert rejection.reason == case.reason, rejection.error
    _assert_dead_letter(rejection)


def _assert_dead_letter(rejection: Rejection) -> None:
    record = dlq.dead_letter(rejection)
    headers = dict(record.headers)
    assert headers.keys() >= KIP_1034
    kind = "DecodeError" if rejection.reason in DECODE_REASONS else "EventRejected"
    assert headers[dlq.EXCEPTION] == f"streamproc.errors.{kind}".encode()
    assert headers[dlq.REASON] == (rejection.reason or "?").encode()
    assert len(str(rejection.error)) < dlq.MESSAGE_MAX_BYTES  # it never quotes the record
    assert headers[dlq.MESSAGE] == str(rejection.error).encode()
    assert headers[dlq.STACKTRACE].startswith(b"Traceback")
    assert (headers[dlq.TOPIC], headers[dlq.PARTITION], headers[dlq.OFFSET]) == (
        b"shop.order.v1",
        b"3",
        b"77",
    )
    assert headers["trace"] == b"t-1"
    assert (record.topic, record.timestamp_ms) == ("shop.order.v1.dlq", 1_700_000_000_000)
    assert dlq.wire_size(record) <= dlq.MAX_RECORD_BYTES  # the 10 MB one keeps a reference
    assert record.value == (rejection.source.value if dlq.DROPPED not in headers else None)


@pytest.mark.parametrize("case", _params(CLEANED))
async def test_a_poison_value_that_can_be_cleaned_comes_out_clean_with_its_flags(
    spec: PipelineSpec, serde: AvroSerde, wire: Wire, case: Poison
) -> None:
    result = await _through_stage(spec, serde, case.build(wire))
    assert result.rejections == []
    (out,) = result.clean
    clean = serde.decode(out.value, "shop.OrderClean")
    assert sorted(clean["quality_flags"]) == sorted(case.flags)
    # repr: 0.0 and -0.0 are equal as numbers, but only one of them is a canonical amount
    assert {name: repr(clean[name]) for name in case.expect} == {
        name: repr(value) for name, value in case.expect.items()
    }


async def test_an_invalid_name_is_marked_invalid_in_field_status(
    spec: PipelineSpec, serde: AvroSerde, wire: Wire
) -> None:
    result = await _through_stage(spec, serde, wire.order(customer_name=" , "))
    clean = serde.decode(result.clean[0].value, "shop.OrderClean")
    assert clean["field_status"]["customer_name"] == "invalid"


def _cost(decode: Callable[[], object]) -> tuple[float, int, DecodeError]:
    """Seconds (untraced) and peak bytes allocated (traced) by a failing decode, and its error."""
    started = time.perf_counter()
    with pytest.raises(DecodeError) as caught:
        decode()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            decode()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seconds, peak, caught.value


BLOCK_2_40 = zigzag(2**40)


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(BLOCK_2_40 + b"\x02a", id="array-2^40-items"),
        pytest.param(zigzag(-(2**40)) + zigzag(2) + b"\x02a", id="array-2^40-sized-block"),
        pytest.param(b"\x00" + BLOCK_2_40 + b"\x02k\x02v", id="map-2^40-entries"),
        pytest.param(BLOCK_2_40 + b"\x00" * 10_000, id="array-2^40-on-10k-empty-items"),
    ],
)
def test_a_block_count_of_2_40_allocates_nothing_like_it(
    serde: AvroSerde, wire: Wire, tail: bytes
) -> None:
    """The feature step reads clean orders, with an array and a map: each item takes at least a
    byte, so the read ends with the message, whatever the count claims."""
    data = wire.clean_order(tail)
    seconds, peak, error = _cost(lambda: serde.decode(data, "shop.OrderClean"))
    assert error.reason == "truncated"
    assert peak < 16 * len(data) + 64_000
    assert seconds < 0.5


@pytest.mark.parametrize("claimed", [10 * MB, 2**40, 2**62])
def test_a_length_prefix_allocates_nothing_like_its_claim(
    serde: AvroSerde, wire: Wire, claimed: int
) -> None:
    seconds, peak, error = _cost(lambda: serde.decode(wire.framed(zigzag(claimed) + b"abc")))
    assert error.reason == "truncated"
    assert peak < 64_000
    assert seconds < 0.05


def test_a_10_mb_message_costs_its_own_size_not_more(serde: AvroSerde, wire: Wire) -> None:
    data = wire.order(customer_name="x" * 10 * MB)
    tracemalloc.start()
    try:
        decoded = serde.decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(decoded["customer_name"]) == 10 * MB
    assert peak < 3 * len(data)  # the bytes read, and the text decoded from them


def test_a_decode_error_holds_nothing_of_the_value(serde: AvroSerde, wire: Wire) -> None:
    """A rejection lives until its dead letter is acknowledged: a reader's error chained to it
    (a UnicodeDecodeError holds the bytes it failed on) would keep 10 MB more alive."""
    (case,) = [case for case in POISON if case.name == "10MB-invalid-utf8"]
    with pytest.raises(DecodeError) as caught:
        serde.decode(case.build(wire))
    assert (caught.value.__cause__, caught.value.__context__) == (None, None)
    assert len(caught.value.message) < 1_000
