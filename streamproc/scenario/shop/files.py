"""Scenario: a generated scenario as JSON-lines files: the events, the truth and the outcomes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from streamproc.scenario.shop.truth import Scenario, Truth


def write_scenario(scenario: Scenario, out: Path) -> tuple[Path, Path, Path]:
    """The events at `out`, the truth and the outcomes beside it, as JSON lines."""
    truth_path = out.with_name(f"{out.stem}.truth.jsonl")
    outcomes_path = out.with_name(f"{out.stem}.outcomes.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_lines(out, scenario.events)
    _write_lines(truth_path, (asdict(t) for t in scenario.truth))
    _write_lines(outcomes_path, scenario.outcomes)
    return out, truth_path, outcomes_path


def read_truth(path: Path) -> list[Truth]:
    with path.open(encoding="utf-8") as lines:
        return [Truth(**json.loads(line)) for line in lines if line.strip()]


def _write_lines(path: Path, rows: Any) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
