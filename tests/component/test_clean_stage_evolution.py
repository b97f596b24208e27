"""The clean stage over a topic holding shop.OrderSubmitted v1 and v2 records: the same order
cleans to the same bytes whichever version wrote it, dedupes across versions, and the field v2
dropped is read as its declared default for both."""

from __future__ import annotations

from typing import Any

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.memory import InMemorySeenStore, InMemoryUnitStatsStore
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.records import Envelope
from streamproc.stages.clean import CleanOutcome, CleanStage
from tests.builders import ORDER_SUBMITTED, order, order_v2, v2_of
from tests.conftest import REPO

RAW = "shop.order.v1"
CLEAN = "shop.OrderClean"


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return load_pipeline(REPO / "pipelines/shop_orders.yaml")


def _stage(spec: PipelineSpec, serde: AvroSerde) -> CleanStage:
    return CleanStage(spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"key")


async def _clean(
    stage: CleanStage, serde: AvroSerde, records: list[dict[str, Any]]
) -> CleanOutcome:
    batch = [
        Envelope(RAW, 0, i, b"k", serde.encode(RAW, ORDER_SUBMITTED, r), (), 1_000 + i)
        for i, r in enumerate(records)
    ]
    return await stage.process(batch)


PAIRS = [  # v1 orders of each source, in the habits docs/scenario.md gives them
    order(customer_id="c-web", items=2),
    order(customer_id=None, email="Guest@Example.org", items=1, amount=59.5),
    order(
        source="app", customer_id="c-app", occurred_at=1_774_746_000, amount_includes_tax=None,
        tax_rate=0.19, currency="USD", session_duration=42_000.0, app_version=4,
        customer_name="ada lovelace",
    ),
    order(
        source="pos", customer_id=None, email=None, country=None, occurred_at="2026-03-29 02:30:00",
        tz="Europe/Berlin", amount=30.0, amount_includes_tax=False, tax_rate=0.19,
        session_duration=None, customer_name="LOVELACE, Ada", payment_method="cash",
    ),
]  # fmt: skip


def unsaid_status(v1: dict[str, Any]) -> str | None:
    """What field_status says of a v1 order's amount_includes_tax (nothing when set)."""
    return "defaulted" if v1["amount_includes_tax"] is None else None


@pytest.mark.parametrize("v1", PAIRS, ids=["web", "guest", "app", "pos"])
async def test_the_same_order_cleans_to_the_same_bytes_from_either_version(
    spec: PipelineSpec, serde: AvroSerde, v1: dict[str, Any]
) -> None:
    """The same clean order, but that v1 may say what v2 cannot: whether its amount includes
    tax (here the source's habit, as docs/scenario.md has it), which field_status tells."""
    from_v1 = await _clean(_stage(spec, serde), serde, [v1])
    from_v2 = await _clean(_stage(spec, serde), serde, [v2_of(v1)])
    assert not from_v1.rejections and not from_v2.rejections
    ((a,), (b,)) = from_v1.clean, from_v2.clean
    assert (a.topic, a.key, a.headers) == (b.topic, b.key, b.headers)
    said, unsaid = serde.decode(a.value, CLEAN), serde.decode(b.value, CLEAN)
    stated = said["field_status"].pop("amount_includes_tax", None)
    assert unsaid["field_status"].pop("amount_includes_tax", None) in {"defaulted", None}
    assert stated == unsaid_status(v1)
    assert said == unsaid
    assert from_v1.flags == from_v2.flags


async def test_a_v2_resubmission_of_a_v1_order_is_a_duplicate(
    spec: PipelineSpec, serde: AvroSerde
) -> None:
    first = order(customer_id="c-1")
    again = v2_of({**first, "event_id": "resubmitted", "occurred_at": first["occurred_at"] + 1})
    retry = v2_of(first)  # the same event id, from a producer now on v2
    result = await _clean(_stage(spec, serde), serde, [first, again, retry])
    assert len(result.clean) == 1
    assert result.duplicate_kinds == {"resubmission": 1, "retry": 1}


async def test_a_v1_records_removed_field_is_read_a_v2_records_is_the_habit(
    spec: PipelineSpec, serde: AvroSerde
) -> None:
    """v2 dropped amount_includes_tax: a v1 record's value is still read (a replay of v1
    history gives what the live run gave, even against the source's declared habit); a v2
    record cannot say it, so the habit applies."""
    odd_v1 = order(customer_id="c-1", amount=100.0, amount_includes_tax=False, tax_rate=0.25)
    v2 = v2_of(odd_v1, event_id="from-v2", customer_id="c-2")
    result = await _clean(_stage(spec, serde), serde, [odd_v1, v2])
    net, gross = (serde.decode(out.value, CLEAN) for out in result.clean)
    assert net["amount_gross_eur"] == pytest.approx(125.0)  # it said net: tax added
    assert "amount_includes_tax" not in net["field_status"]  # as given
    assert gross["amount_gross_eur"] == pytest.approx(100.0)  # web: gross, as declared
    assert gross["field_status"]["amount_includes_tax"] == "defaulted"


async def test_the_new_field_reaches_no_clean_record(spec: PipelineSpec, serde: AvroSerde) -> None:
    with_coupon = order_v2(customer_id="c-1", coupon_code="SPRING10")
    without = {**with_coupon, "coupon_code": None}
    a = (await _clean(_stage(spec, serde), serde, [with_coupon])).clean[0]
    b = (await _clean(_stage(spec, serde), serde, [without])).clean[0]
    assert a.value == b.value
    assert "coupon_code" not in serde.decode(a.value, CLEAN)["field_status"]


async def test_a_coupon_past_the_text_limit_is_rejected_like_any_text(
    spec: PipelineSpec, serde: AvroSerde
) -> None:
    result = await _clean(_stage(spec, serde), serde, [order_v2(coupon_code="x" * 513)])
    assert [r.reason for r in result.rejections] == ["text_too_long"]
