"""The secure benchmark's verdict: each profile's median over its runs, and the ratio of the
medians against issue 16's goal (secure within 15% of plaintext)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.secure_bench import GOAL, markdown, summary


def _runs(plaintext: tuple[float, float], secure: tuple[float, float]) -> list[dict[str, object]]:
    pairs = zip(plaintext, secure, strict=True)
    return [
        {"profile": profile, "events_per_s": rate}
        for p, s in pairs
        for profile, rate in (("plaintext", p), ("secure", s))
    ]


def test_the_ratio_is_of_the_medians_and_15_percent_slower_still_meets_the_goal() -> None:
    result = summary(_runs((1_000.0, 1_200.0), (990.0, 880.0)))
    assert (result["plaintext_events_per_s"], result["secure_events_per_s"]) == (1_100.0, 935.0)
    assert result["secure_to_plaintext"] == pytest.approx(GOAL)
    assert result["goal_met"]


def test_a_secure_profile_slower_than_the_goal_is_reported_as_not_met() -> None:
    result = summary(_runs((1_000.0, 1_000.0), (800.0, 900.0)))
    assert result["secure_to_plaintext"] == pytest.approx(0.85 - 0.0)  # 850 / 1000
    result = summary(_runs((1_000.0, 1_000.0), (800.0, 880.0)))
    assert result["secure_to_plaintext"] == pytest.approx(0.84)
    assert not result["goal_met"]
    facts = {"date": "d", "cpus": 2, "platform": "p", "python": "3", "kafka": "4", "redis": "7"}
    text = markdown({**result, "machine": facts, "events": 10, "labels": 5}, Path())
    assert "goal ≥ 0.85: **not met**" in text
    assert text.count("| plaintext |") == 2 and text.count("| secure |") == 2
