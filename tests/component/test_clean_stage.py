"""The clean stage over batches, with the real serde and the in-memory SeenStore."""

from __future__ import annotations

from typing import Any

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.memory import InMemorySeenStore, InMemoryUnitStatsStore
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.core.unitswitch import UnitStats, UnitStatsRefresh, UnitStatsUpdate
from streamproc.errors import INTERNAL_ERROR
from streamproc.records import SOURCE_HEADER, Envelope
from streamproc.stages.clean import CleanStage
from tests.builders import ORDER_SUBMITTED, order
from tests.conftest import REPO
from tests.fakes import ExplodingCodec

RAW = "shop.order.v1"


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return load_pipeline(REPO / "pipelines/shop_orders.yaml")


def _stage(spec: PipelineSpec, codec: Any, **unit_switch: str) -> CleanStage:
    if unit_switch:
        spec = spec.model_copy(
            update={"unit_switch": spec.unit_switch.model_copy(update=unit_switch)}
        )
    return CleanStage(spec, codec, InMemorySeenStore(), InMemoryUnitStatsStore(), b"key")


def _batch(serde: AvroSerde, records: list[dict[str, Any]], start: int = 0) -> list[Envelope]:
    return [
        Envelope(RAW, 0, start + i, b"k", serde.encode(RAW, ORDER_SUBMITTED, r), (), 1000 + i)
        for i, r in enumerate(records)
    ]


async def test_clean_orders_keep_their_order_and_are_keyed_by_entity(
    spec: PipelineSpec, serde: AvroSerde
) -> None:
    records = [order(customer_id=f"c{i % 3}", amount=10.0 + i) for i in range(9)]
    result = await _stage(spec, serde).process(_batch(serde, records))
    decoded = [serde.decode(out.value, "shop.OrderClean") for out in result.clean]
    assert [d["event_id"] for d in decoded] == [r["event_id"] for r in records]
    assert [out.key for out in result.clean] == [f"c{i % 3}".encode() for i in range(9)]
    assert [out.timestamp_ms for out in result.clean] == list(range(1000, 1009))
    assert result.flags["tax_defaulted"] == 9


async def test_duplicates_are_audited_not_cleaned(spec: PipelineSpec, serde: AvroSerde) -> None:
    first = order(customer_id="c1")
    resubmitted = {**first, "event_id": "new-id", "occurred_at": first["occurred_at"] + 60_000}
    stage = _stage(spec, serde)
    result = await stage.process(_batch(serde, [first, first, resubmitted]))
    assert len(result.clean) == 1
    audits = [serde.decode(out.value, "shop.OrderDuplicate") for out in result.duplicates]
    assert [(a["event_id"], a["kind"], a["first_event_id"]) for a in audits] == [
        (first["event_id"], "retry", first["event_id"]),
        ("new-id", "resubmission", first["event_id"]),
    ]
    assert (audits[0]["first_offset"], audits[0]["offset"]) == (0, 1)
    assert result.duplicate_kinds == {"retry": 1, "resubmission": 1}


async def test_invalid_and_undecodable_records_are_rejected_in_place(
    spec: PipelineSpec, serde: AvroSerde
) -> None:
    batch = _batch(serde, [order(customer_id="a"), order(amount=-1.0), order(customer_id="b")])
    batch.insert(1, Envelope(RAW, 0, 99, None, b"garbage"))
    result = await _stage(spec, serde).process(batch)
    assert len(result.clean) == 2
    assert [(r.source.offset, r.reason) for r in result.rejections] == [
        (99, "not_wire_format"),
        (1, "invalid_amount"),
    ]


async def test_a_bug_costs_one_record(spec: PipelineSpec, serde: AvroSerde) -> None:
    records = [order(customer_id="a"), order(customer_id="poison"), order(customer_id="b")]
    batch = _batch(serde, records)
    result = await _stage(spec, ExplodingCodec(serde, batch[1].value or b"")).process(batch)
    assert len(result.clean) == 2
    assert [(r.source.offset, r.reason) for r in result.rejections] == [(1, INTERNAL_ERROR)]


def _app_orders(version: int, durations: list[float], start: int) -> list[dict[str, Any]]:
    return [
        order(
            source="app", customer_id=f"c{start + i}", occurred_at=1_774_746_000 + i,
            amount_includes_tax=None, tax_rate=0.19, app_version=version, session_duration=d,
        )
        for i, d in enumerate(durations)
    ]  # fmt: skip


V4_MS = [float(60_000 + 1_000 * (i % 50)) for i in range(60)]  # 60–109 s, sent in ms
V5_S = [60.0 + (i % 50) for i in range(20)]  # the same sessions, silently in seconds


@pytest.mark.parametrize(
    ("action", "clean_v5", "durations", "rejected"),
    [
        ("convert", 20, V5_S, 0),
        ("flag", 20, [s / 1000 for s in V5_S], 0),
        ("quarantine", 0, None, 20),
    ],
)
async def test_the_app_v5_unit_switch_per_configured_action(  # noqa: PLR0913, PLR0917 - fixtures and parameters
    spec: PipelineSpec,
    serde: AvroSerde,
    action: str,
    clean_v5: int,
    durations: list[float] | None,
    rejected: int,
) -> None:
    stage = _stage(spec, serde, action=action)
    await stage.process(_batch(serde, _app_orders(4, V4_MS, 0)))
    result = await stage.process(_batch(serde, _app_orders(5, V5_S, 100), start=100))
    decoded = [serde.decode(out.value, "shop.OrderClean") for out in result.clean]
    assert len(decoded) == clean_v5
    assert all("unit_switch_suspected" in d["quality_flags"] for d in decoded)
    if durations is not None:
        assert [d["session_duration_s"] for d in decoded] == pytest.approx(durations)
    assert [r.reason for r in result.rejections] == ["unit_switch_suspected"] * rejected
    assert result.unit_switches == {("app", "session_duration"): 20}


async def test_clean_events_carry_their_source_position(
    spec: PipelineSpec, serde: AvroSerde
) -> None:
    """The feature step guards on it: an order the stage sends twice counts once there."""
    records = [order(customer_id="a"), order(customer_id="b")]
    result = await _stage(spec, serde).process(_batch(serde, records, start=40))
    positions = [dict(out.headers)[SOURCE_HEADER] for out in result.clean]
    assert positions == [b"0/40", b"0/41"]


async def test_a_converted_order_carries_unit_converted_once_and_is_counted_once(
    spec: PipelineSpec, serde: AvroSerde
) -> None:
    """40 app v4 orders in ms, then one v5 order of 24.3 s: 24.3 s, not 1,458 (minutes)."""
    stage = _stage(spec, serde)
    v4 = [float(120_000 + 3_000 * i) for i in range(40)]
    await stage.process(_batch(serde, _app_orders(4, v4, 0)))
    result = await stage.process(_batch(serde, _app_orders(5, [24.3], 100), start=100))
    (clean,) = [serde.decode(out.value, "shop.OrderClean") for out in result.clean]
    assert clean["session_duration_s"] == pytest.approx(24.3)
    assert clean["quality_flags"].count("unit_converted") == 1
    assert result.flags["unit_converted"] == 1


class CountingUnitStats:
    """An in-memory store that counts full reads of the shared state and updates sent alone."""

    def __init__(self) -> None:
        self._store = InMemoryUnitStatsStore()
        self.reads = self.sends = 0

    async def exchange(self, update: UnitStatsUpdate) -> UnitStats:
        self.reads += 1
        return await self._store.exchange(update)

    async def send(self, update: UnitStatsUpdate) -> None:
        self.sends += 1
        await self._store.send(update)


async def test_the_first_batch_reads_the_shared_unit_state_once_then_once_a_second(
    spec: PipelineSpec, serde: AvroSerde
) -> None:
    units = CountingUnitStats()
    now = [0.0]
    stage = CleanStage(
        spec, serde, InMemorySeenStore(), units, b"key", UnitStatsRefresh(1.0, lambda: now[0])
    )
    await stage.process(_batch(serde, [order() for _ in range(5)]))
    assert (units.reads, units.sends) == (1, 1)  # read before judging; its counts sent
    now[0] = 1.0
    await stage.process(_batch(serde, [order() for _ in range(5)], 5))
    assert (units.reads, units.sends) == (2, 1)
