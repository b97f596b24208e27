"""A consumer's lag per partition, from librdkafka's statistics, and its gauge's series."""

from __future__ import annotations

import json

from streamproc.adapters.kafka.lag import lag_reporting, partition_lags
from streamproc.adapters.metrics import StageMetrics


def _partition(**fields: object) -> dict[str, object]:
    """A partition's statistics as librdkafka writes them (the fields read here, and some)."""
    base = {
        "desired": True,
        "fetch_state": "active",
        "hi_offset": -1001,
        "ls_offset": -1001,
        "app_offset": -1001,
        "committed_offset": -1001,
        "consumer_lag": -1,
    }
    return base | fields


def _stats(partitions: dict[str, dict[str, object]], topic: str = "orders") -> dict[str, object]:
    return {"name": "rdkafka#consumer-1", "topics": {topic: {"partitions": partitions}}}


def test_lag_counts_from_the_position_read_to_the_last_stable_offset() -> None:
    stats = _stats(
        {
            "0": _partition(hi_offset=120, ls_offset=100, app_offset=70, committed_offset=40),
            "1": _partition(hi_offset=50, ls_offset=50, app_offset=-1001, committed_offset=20),
            "2": _partition(hi_offset=9, ls_offset=9),  # nothing read, nothing committed
            "3": _partition(desired=False, hi_offset=9, ls_offset=9, app_offset=1),  # not ours
            "-1": _partition(hi_offset=5, ls_offset=5, app_offset=0),  # librdkafka's own
        }
    )
    assert partition_lags(stats) == {("orders", 0): 30, ("orders", 1): 30}


def test_a_reader_without_stable_offsets_counts_to_the_high_watermark() -> None:
    stats = _stats({"0": _partition(hi_offset=80, app_offset=75)})
    assert partition_lags(stats) == {("orders", 0): 5}


def test_the_statistics_callback_reports_and_survives_a_bad_document() -> None:
    reported: list[object] = []
    on_stats = lag_reporting(reported.append)["stats_cb"]
    on_stats(json.dumps(_stats({"0": _partition(ls_offset=10, app_offset=4)})))
    on_stats("not json")  # logged, not raised into librdkafka's poll
    assert reported == [{("orders", 0): 6}]


def _lag_series(metrics: StageMetrics) -> dict[tuple[str, str], float]:
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for family in metrics.registry.collect()
        if family.name == "streamproc_consumer_lag"
        for s in family.samples
    }


def test_a_partition_that_moved_away_loses_its_series_and_another_consumer_keeps_its() -> None:
    metrics = StageMetrics()
    worker, trainer = metrics.lag_reporter(), metrics.lag_reporter()
    worker({("orders", 0): 3, ("orders", 1): 4})
    trainer({("labels", 0): 7})
    worker({("orders", 1): 2})  # partition 0 was revoked
    assert _lag_series(metrics) == {("orders", "1"): 2, ("labels", "0"): 7}
