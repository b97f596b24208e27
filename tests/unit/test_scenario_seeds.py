"""Acceptance on many seeds: run-file's clean output against the generator's truth, with the
wider mix of countries, currencies and absurd values (clean stage only: the features are held
against their own reference in test_features)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.scenario.shop import GeneratorConfig, generate, write_scenario
from streamproc.tools.run_file import run_file
from tests.conftest import REPO
from tests.truth import compare

PII_KEY = b"seeds-test-key"
SEEDS = range(21, 31)


@pytest.fixture(scope="module")
def clean_only() -> PipelineSpec:
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    return spec.model_copy(update={"features": spec.features.model_copy(update={"views": []})})


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_run_file_matches_the_truth_on_ten_seeds(clean_only: PipelineSpec, tmp_path: Path) -> None:
    catalog = SchemaCatalog.load(REPO / "schemas")
    failures = {}
    for seed in SEEDS:
        scenario = generate(GeneratorConfig(events=20_000, seed=seed))
        events, _, _ = write_scenario(scenario, tmp_path / f"{seed}/orders.jsonl")
        out = tmp_path / f"{seed}/out"
        asyncio.run(run_file(clean_only, catalog, PII_KEY, events, out))
        report = compare(
            scenario.truth,
            _lines(out / "clean.jsonl"),
            _lines(out / "duplicates.jsonl"),
            {d["record"]["event_id"]: d["reason"] for d in _lines(out / "dlq.jsonl")},
            PII_KEY,
        )
        problems = [
            *report.mismatches[:3],
            *(f"lost {event_id}" for event_id in sorted(report.lost)[:3]),
            *(f"unexpected {event_id}" for event_id in sorted(report.unexpected)[:3]),
            *(f"{e}: {r}" for e, r in list(report.wrong_reasons.items())[:3]),
        ]
        if (report.duplicate_precision, report.duplicate_recall) != (1.0, 1.0):
            problems.append(
                f"duplicates P={report.duplicate_precision} R={report.duplicate_recall}"
            )
        if report.first_v5_flagged_at != 1:
            problems.append(f"first app v5 order flagged: #{report.first_v5_flagged_at}")
        if problems:
            failures[seed] = problems
    assert failures == {}
