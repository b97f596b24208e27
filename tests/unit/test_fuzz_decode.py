"""Fuzz: framing, decode and normalize through the clean stage (real serde, in-memory stores).

Each example is a batch of 5 raw values: random bytes, random bytes behind a valid frame,
valid orders mutated on the wire (bits flipped, cut, bytes inserted, deleted or overwritten),
and orders valid for the schema with hostile values (NaN, infinities, extreme ints, any text
UTF-8 can carry, impossible zones and times). Whatever comes in, no exception escapes the
stage, each record ends as exactly one of clean, duplicate or dead letter, and each dead letter
says why. STREAMPROC_FUZZ_EXAMPLES counts records, not batches: 10,000 (2,000 batches) by
default, 100,000 under `make faults`. The run is derandomized: CI sees the same batches each
time.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka import dlq
from streamproc.adapters.memory import InMemorySeenStore, InMemoryUnitStatsStore
from streamproc.config.pipeline import load_pipeline
from streamproc.core import canonical
from streamproc.records import SOURCE_HEADER, Envelope, Rejection
from streamproc.stages.clean import CleanOutcome, CleanStage
from tests.conftest import REPO
from tests.poison import RAW_TOPIC, Wire, base

RECORDS = int(os.environ.get("STREAMPROC_FUZZ_EXAMPLES", "10000"))
BATCH = 5  # records per example: one stage call serves five, and Hypothesis's cost is per draw
CATALOG = SchemaCatalog.load(REPO / "schemas")
SERDE = AvroSerde(CATALOG, EmbeddedRegistry(CATALOG))
WIRE = Wire(SERDE, CATALOG)
SPEC = load_pipeline(REPO / "pipelines/shop_orders.yaml")
# Every reason the clean stage may give (the list in the README); internal_error is a bug.
REASONS = {
    *("not_wire_format", "unknown_schema_id", "truncated", "schema_mismatch"),
    *("missing_required", "unknown_source", "invalid_time", "implausible_time"),
    *("unknown_timezone", "invalid_amount", "invalid_tax_rate", "text_too_long"),
    *("unknown_currency", "unknown_tax_inclusion", "unknown_tax_rate", "invalid_country"),
    *("invalid_items", "invalid_duration", "unit_switch_suspected"),
}

# Any text UTF-8 can carry (not lone surrogates), and a few long and strange ones.
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=24) | st.sampled_from(
    ["x" * 512, "x" * 513, "[" * 300, "\u202e" * 40, "\u200b", " , ", "😀" * 100, "\x00"]
)
_floats = st.floats() | st.sampled_from([-0.0, 1e308, 5e-324, -1.0])
_long = st.integers(-(2**63), 2**63 - 1)
_int = st.integers(-(2**31), 2**31 - 1)
_times = (
    st.sampled_from(["2026-03-29T02:30:00", "2026-10-25T02:30", "2026-03-01T10:00:00+14:00"])
    | _long
    | st.datetimes().map(lambda moment: moment.isoformat())
    | _text
)
_zones = st.sampled_from(["America/Santiago", "Mars/Olympus", "Europe", "A" * 300, ""])
# A hostile value for any field of the raw order (ints as longs: past 32 bits on the wire).
HOSTILE: dict[str, st.SearchStrategy[Any]] = {
    "event_id": _text,
    "source": _text,
    "customer_id": _text,
    "customer_name": _text,
    "email": _text,
    "country": _text,
    "amount": _floats,
    "amount_includes_tax": st.none(),
    "tax_rate": _floats,
    "currency": _text,
    "items": _int | _long,
    "occurred_at": _times,
    "tz": _zones | _text,
    "session_duration": _floats,
    "app_version": _int | _long,
    "payment_method": _text,
}
_TIMES = {"web": 1_774_746_000_000, "app": 1_774_746_000, "pos": "2026-03-01T10:00:00"}


@st.composite
def orders(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible order of any source, with up to three of its fields hostile. Three event
    ids and two customers only, so that batches hold retries and resubmissions too."""
    source = draw(st.sampled_from(sorted(_TIMES)))
    raw = base(
        event_id=draw(st.sampled_from(["e1", "e2", "e3"])),
        source=source,
        occurred_at=_TIMES[source],
        customer_id=draw(st.sampled_from([None, "c1", "c2"])),
        customer_name=draw(st.sampled_from([None, "Ada Lovelace", "LOVELACE, Ada", "ada"])),
        amount=draw(st.sampled_from([0.0, 19.99, 119.0, 99_999.0])),
        country=draw(st.sampled_from([None, "de", "FR", "uk", "US"])),
        tax_rate=draw(st.sampled_from([None, 0.0, 0.2])),
        currency=draw(st.sampled_from(["EUR", "usd"])),
        items=draw(st.integers(1, 12)),
        session_duration=draw(st.sampled_from([None, 0.0, 42.5, 60_000.0])),
        app_version=draw(st.sampled_from([None, 4, 5])),
    )
    hostile = draw(st.sets(st.sampled_from(sorted(HOSTILE)), max_size=3))
    for name in sorted(hostile):  # a set's order changes with each process's string hashes
        raw[name] = draw(HOSTILE[name])
    return raw


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid framed order, then one to three edits anywhere in it, frame included."""
    data = bytearray(WIRE.loose(**draw(orders())))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        edit = draw(st.sampled_from(["flip", "cut", "insert", "delete", "overwrite"]))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "cut":
            del data[at:]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 12))]
        elif data:
            data[at] = draw(st.integers(0, 255))
    return bytes(data)


values = st.one_of(  # a quarter each
    st.none() | st.binary(max_size=40),
    st.binary(max_size=120).map(WIRE.framed),
    mutated(),
    orders().map(lambda raw: WIRE.loose(**raw)),
)
batches = st.lists(values, min_size=BATCH, max_size=BATCH)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop:
        yield loop


@pytest.mark.slow  # about 25 s of CPU for 10,000 records
@pytest.mark.timeout(max(300, RECORDS // 100))  # 10 ms a record: room for a loaded machine
@settings(
    max_examples=max(RECORDS // BATCH, 1),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(batch=batches)
def test_no_input_escapes_the_clean_stage_and_every_record_is_accounted_for(
    runner: asyncio.Runner, batch: list[bytes | None]
) -> None:
    envelopes = [
        Envelope(RAW_TOPIC, 0, offset, b"key", value, (), 1_700_000_000_000)
        for offset, value in enumerate(batch)
    ]
    stage = CleanStage(SPEC, SERDE, InMemorySeenStore(), InMemoryUnitStatsStore(), b"pii-key")
    result = runner.run(stage.process(envelopes))
    assert _ends(result) == Counter(range(len(batch)))  # each offset exactly once
    for kind in ("clean", "duplicates"):  # what was reached: --hypothesis-show-statistics
        event(kind, len(getattr(result, kind)) > 0)
    for rejection in result.rejections:
        _assert_dead_letter_says_why(rejection)
    for out in result.clean:
        _assert_clean(SERDE.decode(out.value, "shop.OrderClean"))


def _ends(result: CleanOutcome) -> Counter[int]:
    """The source offsets that ended clean, as a duplicate or in the DLQ, counted."""
    clean = [int(dict(out.headers)[SOURCE_HEADER].split(b"/")[1]) for out in result.clean]
    duplicates = [
        SERDE.decode(out.value, "shop.OrderDuplicate")["offset"] for out in result.duplicates
    ]
    rejected = [rejection.source.offset for rejection in result.rejections]
    return Counter([*clean, *duplicates, *rejected])


def _assert_dead_letter_says_why(rejection: Rejection) -> None:
    event("reason", rejection.reason)
    assert rejection.reason in REASONS, (rejection.reason, rejection.error)
    headers = dict(dlq.dead_letter(rejection).headers)
    assert headers[dlq.REASON] == rejection.reason.encode()
    assert headers[dlq.EXCEPTION].startswith(b"streamproc.errors.")
    assert headers[dlq.MESSAGE]


def _assert_clean(order: dict[str, Any]) -> None:
    """What the feature step and the models may rely on in a clean order."""
    low, high = SPEC.plausible.amount_gross_eur
    assert low <= order["amount_net_eur"] <= order["amount_gross_eur"] <= high
    assert math.copysign(1.0, order["amount_gross_eur"]) == 1.0
    assert canonical.EARLIEST_MS <= order["occurred_at"] < canonical.LATEST_MS
    assert order["country"] in canonical.COUNTRY_CODES
    assert order["currency"] in SPEC.money.rates_to_eur
    duration = order["session_duration_s"]
    assert duration is None or 0 <= duration <= SPEC.plausible.session_duration_s[1]
    names = [name for name in (order["given_name"], order["family_name"]) if name is not None]
    assert all(name.strip() for name in names), names  # a name, or none: never a blank one
    assert not names or any(char.isalpha() for char in "".join(names)), names
