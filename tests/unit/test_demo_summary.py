"""The demo's verdict: the worker's counts against the ground truth's."""

from __future__ import annotations

from streamproc.scenario.shop import GeneratorConfig, generate
from streamproc.tools.demo import summary_lines, truth_mismatches

CLEAN = "shop.order.clean.v1"


def test_counts_that_match_the_truth_pass_and_any_difference_is_named() -> None:
    scenario = generate(GeneratorConfig(events=2_000, seed=3))
    kinds = [t.kind for t in scenario.truth]
    metrics = {
        "consumed|shop.order.v1": 2_000.0,
        f"produced|{CLEAN}": float(kinds.count("order")),
        "duplicates|retry": float(kinds.count("retry")),
        "duplicates|resubmission": float(kinds.count("resubmission")),
        "dead_letters|invalid_amount": float(kinds.count("invalid")),
    }
    assert truth_mismatches(metrics, scenario, CLEAN) == []
    off_by_one = {**metrics, "duplicates|retry": metrics["duplicates|retry"] - 1}
    [problem] = truth_mismatches(off_by_one, scenario, CLEAN)
    assert problem.startswith("duplicates|retry: the truth says")
    lines = summary_lines(metrics, "shop.order.v1")
    assert lines[0].split() == ["consumed", "2000"]
