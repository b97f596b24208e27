"""The fault matrix's fixtures: one broker and one Redis (each behind a proxy) for the session,
shared by the cases (a case that kills one restarts it, on the same port and data), the scale,
and the results table.

`make test` runs each case small: STREAMPROC_FAULTS_SCALE events (3,000) and one seed, with
shortened outages. `make faults` sets STREAMPROC_FAULTS_SCALE=100000 and STREAMPROC_FAULTS_SEEDS=3
(seeds 1, 2, 3), runs the outages at the issue's lengths, and writes the table to the file
STREAMPROC_FAULTS_REPORT names (FAULTS.md). STREAMPROC_FAULTS_PROFILE=secure runs the cases
with the workers on SASL_SSL and Redis TLS as an ACL user (tests/harness/secure_profile.py;
`make faults PROFILE=secure`); the cases marked secure_smoke are the ones `make test` also runs
so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from tests.conftest import REPO
from tests.harness.case import CaseSettings, FaultCase
from tests.harness.cluster import FaultStack, start_fault_stack
from tests.harness.report import (
    RESULTS,
    CaseResult,
    failures,
    profile_line,
    table,
    write_report,
)
from tests.harness.secure_profile import Profile, profile_from
from tests.harness.workers import WORKER_MODULE

HERE = Path(__file__).parent
SMALL_EVENTS = 3_000
FULL_EVENTS = 100_000  # from this scale on, outages last as long as the issue says


@dataclass(frozen=True)
class Scale:
    """How big the cases run: events per case, and short or full-length faults."""

    events: int

    @property
    def full(self) -> bool:
        return self.events >= FULL_EVENTS

    def pick(self, small: float, full: float) -> float:
        return full if self.full else small

    @property
    def per_second(self) -> float:
        """The load's rate: about a minute of traffic at full scale, six seconds small."""
        return max(500.0, self.events / 60)


def _scale() -> Scale:
    return Scale(int(os.environ.get("STREAMPROC_FAULTS_SCALE", SMALL_EVENTS)))


def _seeds() -> list[int]:
    """STREAMPROC_FAULTS_SEEDS: a count (3: seeds 1, 2, 3) or a list (7,11)."""
    text = os.environ.get("STREAMPROC_FAULTS_SEEDS", "1")
    if "," in text:
        return [int(part) for part in text.split(",") if part.strip()]
    return list(range(1, int(text) + 1))


def _profile() -> Profile:
    return profile_from(os.environ)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.faults)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "seed" in metafunc.fixturenames:
        metafunc.parametrize("seed", _seeds(), ids=lambda seed: f"seed{seed}")


@pytest.fixture(scope="session")
def scale() -> Scale:
    return _scale()


@pytest.fixture(scope="session")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    stack = start_fault_stack(tmp_path_factory.mktemp("fault-stack"), _profile())
    yield stack
    stack.close()


@pytest.fixture(scope="session")
def spec() -> PipelineSpec:
    return load_pipeline(REPO / "pipelines/shop_orders.yaml")


CaseFactory = Callable[..., FaultCase]


@pytest.fixture
def new_case(
    fault_stack: FaultStack, serde: AvroSerde, spec: PipelineSpec, scale: Scale, tmp_path: Path
) -> Iterator[CaseFactory]:
    """Makes the test's case(s); each is closed at teardown, whatever happened."""
    made: list[FaultCase] = []
    settings = CaseSettings(fault_stack, serde, spec, scale.events, tmp_path)

    def make(
        title: str,
        seed: int,
        overrides: Mapping[str, str] | None = None,
        module: str = WORKER_MODULE,
    ) -> FaultCase:
        case = FaultCase(settings, title, seed, overrides, module)
        made.append(case)
        return case

    yield make
    for case in made:
        case.close()


def _ordered(results: list[CaseResult]) -> list[CaseResult]:
    """By case number (titles start with it), then seed."""

    def number(result: CaseResult) -> int:
        match = re.match(r"\d+", result.case)
        return int(match.group()) if match else 0

    return sorted(results, key=lambda r: (number(r), r.case, r.seed))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if RESULTS:
        terminalreporter.write_sep("=", "fault matrix")
        terminalreporter.write_line(profile_line(_profile()))
        terminalreporter.write_line(table(_ordered(RESULTS)))
        terminalreporter.write_line(failures(_ordered(RESULTS)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = os.environ.get("STREAMPROC_FAULTS_REPORT")
    if report and RESULTS:
        write_report(Path(report), _ordered(RESULTS), _profile())
