"""Acceptance through the real broker and Redis: generated traffic against its ground truth."""

from __future__ import annotations

import uuid

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka import dlq
from streamproc.adapters.kafka.admin import end_offsets
from streamproc.scenario.shop import GeneratorConfig, generate
from tests.builders import ORDER_SUBMITTED
from tests.integration.conftest import PII_KEY, Stack, Worker, produce_raw_orders, read_run
from tests.truth import compare

RAW, CLEAN, DUPLICATES, DLQ = (
    "shop.order.v1",
    "shop.order.clean.v1",
    "shop.order.duplicates.v1",
    "shop.order.v1.dlq",
)
EVENTS = 4_000


def test_generated_traffic_comes_out_as_the_truth_says(
    stack: Stack, worker: Worker, serde: AvroSerde
) -> None:
    scenario = generate(GeneratorConfig(events=EVENTS, seed=23))
    run = uuid.uuid4().hex.encode()
    starts = {topic: end_offsets(stack.kafka, topic) for topic in (CLEAN, DUPLICATES, DLQ)}
    produce_raw_orders(stack, serde, scenario.events, run)

    kinds = [t.kind for t in scenario.truth]
    clean = read_run(stack, starts[CLEAN], run, kinds.count("order"), timeout_s=120)
    duplicates = read_run(
        stack, starts[DUPLICATES], run, kinds.count("retry") + kinds.count("resubmission"), 30
    )
    dead = read_run(stack, starts[DLQ], run, kinds.count("invalid"), timeout_s=30)

    rejected = {}
    for message in dead:
        raw = serde.decode(message.value(), ORDER_SUBMITTED)
        rejected[raw["event_id"]] = dict(message.headers())[dlq.REASON].decode()
    report = compare(
        scenario.truth,
        [serde.decode(m.value(), "shop.OrderClean") for m in clean],
        [serde.decode(m.value(), "shop.OrderDuplicate") for m in duplicates],
        rejected,
        PII_KEY.encode(),
    )
    assert (report.lost, report.unexpected) == (set(), set()), worker.log_tail()
    assert report.mismatches == []
    assert (report.duplicate_precision, report.duplicate_recall) == (1.0, 1.0)
    assert report.wrong_reasons == {}
    assert report.first_v5_flagged_at is not None and report.first_v5_flagged_at <= 200
