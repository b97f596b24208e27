"""Acceptance: 20,000 generated events through `run-file`, held against the ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.kafka.dlq import (
    EXCEPTION,
    MESSAGE,
    OFFSET,
    PARTITION,
    REASON,
    STACKTRACE,
    TOPIC,
)
from streamproc.cli import main
from streamproc.scenario.shop import read_truth
from tests.truth import Report, compare

PII_KEY = "scenario-test-key"
KIP_1034_HEADERS = (EXCEPTION, MESSAGE, STACKTRACE, TOPIC, PARTITION, OFFSET, REASON)

pytestmark = pytest.mark.slow  # one scenario of the whole generator, built once: ~14 s


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    folder = tmp_path_factory.mktemp("scenario")
    events, out = folder / "orders.jsonl", folder / "out"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STREAMPROC_PII_KEY", PII_KEY)
        assert main(["generate", "--events", "20000", "--seed", "7", "--out", str(events)]) == 0
        assert main(["run-file", "--in", str(events), "--out", str(out)]) == 0
    dlq = _lines(out / "dlq.jsonl")
    for record in dlq:  # what tools that read Kafka Streams DLQs look for
        assert set(KIP_1034_HEADERS) <= set(record["headers"])
        assert record["headers"][REASON] == record["reason"]
    return compare(
        read_truth(folder / "orders.truth.jsonl"),
        _lines(out / "clean.jsonl"),
        _lines(out / "duplicates.jsonl"),
        {record["record"]["event_id"]: record["reason"] for record in dlq},
        PII_KEY.encode(),
    )


def test_every_canonical_value_matches_the_truth(report: Report) -> None:
    assert report.mismatches == []


def test_no_order_is_lost_and_nothing_else_is_clean(report: Report) -> None:
    assert (report.lost, report.unexpected) == (set(), set())


def test_duplicates_are_found_exactly(report: Report) -> None:
    assert (report.duplicate_precision, report.duplicate_recall) == (1.0, 1.0)


def test_every_invalid_event_is_rejected_with_its_reason(report: Report) -> None:
    assert report.wrong_reasons == {}


def test_the_app_v5_switch_is_flagged_within_the_first_200_affected_events(
    report: Report,
) -> None:
    assert report.first_v5_flagged_at is not None
    assert report.first_v5_flagged_at <= 200
