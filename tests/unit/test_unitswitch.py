"""Undeclared unit switches are found from magnitudes, per (source, field, version)."""

from __future__ import annotations

import random

import pytest

from streamproc.unitswitch import UnitSwitchDetector


def _detector() -> UnitSwitchDetector:
    return UnitSwitchDetector(min_reference=30, tolerance_decades=0.5)


def _sessions(rng: random.Random, count: int) -> list[float]:
    """Session lengths in seconds: log-normal around 90 s, like real sessions."""
    return [rng.lognormvariate(4.5, 0.9) for _ in range(count)]


def test_a_version_sending_seconds_where_ms_are_declared_is_caught_from_its_first_value() -> None:
    rng = random.Random(1)
    detector = _detector()
    for seconds in _sessions(rng, 300):  # v4: ms declared and sent, converted to s correctly
        assert not detector.check("app", "session_duration", 4, seconds, "ms").suspected
    v5 = [seconds / 1000 for seconds in _sessions(rng, 200)]  # v5 sends s, read as ms
    verdicts = [detector.check("app", "session_duration", 5, value, "ms") for value in v5]
    assert all(v.suspected for v in verdicts)
    assert {v.correction for v in verdicts} == {1000.0}


def test_a_factor_of_sixty_is_caught_once_the_group_settles() -> None:
    rng = random.Random(2)
    detector = _detector()
    for seconds in _sessions(rng, 300):
        detector.check("web", "session_duration", None, seconds, "s")
    minutes = [seconds / 60 for seconds in _sessions(rng, 100)]  # minutes sent as seconds
    verdicts = [detector.check("web", "session_duration", "v2", value, "s") for value in minutes]
    assert sum(v.suspected for v in verdicts) >= 90
    assert all(v.correction == 60.0 for v in verdicts[-50:])


def test_a_steady_stream_raises_no_false_alarm() -> None:
    rng = random.Random(3)
    detector = _detector()
    verdicts = [detector.check("web", "d", None, s, "s") for s in _sessions(rng, 5_000)]
    assert sum(v.suspected for v in verdicts) <= 5  # 3 spreads out: a handful at most


def test_versions_are_compared_per_source_and_field() -> None:
    rng = random.Random(4)
    detector = _detector()
    for seconds in _sessions(rng, 100):
        detector.check("app", "session_duration", 4, seconds, "ms")
    # web's values are its own reference, however different from app's
    assert not detector.check("web", "session_duration", None, 0.05, "s").suspected


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_non_positive_values_say_nothing(value: float) -> None:
    detector = _detector()
    for _ in range(50):
        detector.check("app", "d", 4, 100.0, "ms")
    assert not detector.check("app", "d", 5, value, "ms").suspected


def test_nothing_is_judged_before_a_reference_exists() -> None:
    detector = _detector()
    verdicts = [detector.check("app", "d", 5, 0.09, "ms") for _ in range(29)]
    assert not any(v.suspected for v in verdicts)


def test_short_sessions_of_a_healthy_group_are_outliers_not_unit_switches() -> None:
    rng = random.Random(5)
    detector = _detector()
    for _ in range(500):  # a narrower spread than _sessions: 3 s is far out, as in the scenario
        detector.check("web", "session_duration", None, rng.lognormvariate(5.2, 0.6), "s")
    # a click-through in 3 s sits near "minutes sent as seconds" (×60), but the group is healthy
    shorts = [rng.uniform(2, 9) for _ in range(20)]
    verdicts = [detector.check("web", "session_duration", None, s, "s") for s in shorts]
    assert not any(v.suspected for v in verdicts)


def test_a_switched_group_corrects_its_short_values_by_the_common_step() -> None:
    rng = random.Random(6)
    detector = _detector()
    for seconds in _sessions(rng, 300):
        detector.check("app", "session_duration", 4, seconds, "ms")
    # v5 sends seconds; a 5 s session read as ms is 0.005 s: nearer the minutes step than the
    # seconds one on its own, but its group agrees on ×1000
    values = (
        [s / 1000 for s in _sessions(rng, 3)]
        + [0.005, 0.0068]
        + [s / 1000 for s in _sessions(rng, 30)]
    )
    verdicts = [detector.check("app", "session_duration", 5, v, "ms") for v in values]
    assert [v.correction for v in verdicts[:5]] == [1000.0] * 5
    assert all(v.suspected and v.correction == 1000.0 for v in verdicts)
