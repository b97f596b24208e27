"""Adapter: a consumer's lag per partition, from librdkafka's statistics (no extra requests:
the client already knows each partition's end from its fetches).

librdkafka's own `consumer_lag` counts from the committed offset, which a consumer whose
offsets a transactional producer commits learns only at assignment; the lag here counts from
the position the application has read to (`app_offset`), falling back to the committed offset
before the first record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Lags = Mapping[tuple[str, int], int]  # (topic, partition) → records behind its end
LAG_INTERVAL_S = 5.0


def partition_lags(stats: Mapping[str, Any]) -> dict[tuple[str, int], int]:
    """The lag of every partition the consumer holds, from one statistics document."""
    lags: dict[tuple[str, int], int] = {}
    for topic, topic_stats in stats.get("topics", {}).items():
        for partition, p in topic_stats.get("partitions", {}).items():
            if partition == "-1" or not p.get("desired"):  # -1: librdkafka's internal one
                continue
            # ls_offset: the last stable offset, the end a read_committed reader sees
            end = p.get("ls_offset", -1) if p.get("ls_offset", -1) >= 0 else p.get("hi_offset", -1)
            position = max(p.get("app_offset", -1), p.get("committed_offset", -1))
            if end >= 0 and position >= 0:
                lags[(topic, int(partition))] = max(0, end - position)
    return lags


def lag_reporting(report: Callable[[Lags], None]) -> dict[str, Any]:
    """The consumer settings that call `report` with its lags every LAG_INTERVAL_S (from the
    thread that polls it)."""

    def on_stats(document: str) -> None:
        try:
            report(partition_lags(json.loads(document)))
        except Exception:  # a metric must never take the consumer down
            log.exception("could not read the consumer's statistics")

    return {"statistics.interval.ms": int(LAG_INTERVAL_S * 1000), "stats_cb": on_stats}
