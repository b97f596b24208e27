"""Tool (no I/O): one scrape of a worker's /metrics, parsed into the series `streamproc top`
reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from prometheus_client.parser import text_string_to_metric_families

Labels: TypeAlias = tuple[tuple[str, str], ...]  # a series' labels, sorted by name
Series: TypeAlias = Mapping[str, Mapping[Labels, float]]  # sample name → labels → value

# Families whose samples only go up (until their process restarts); the others are levels.
_INCREASING = frozenset({"counter", "histogram"})


@dataclass(frozen=True, slots=True)
class Scrape:
    """One worker's metrics at one moment (`at`: monotonic seconds)."""

    at: float
    counters: Series  # counters, and histograms' buckets, counts and sums
    gauges: Series


def parse(text: str, at: float) -> Scrape:
    """Prometheus' text format; raises ValueError on text that is not."""
    counters: dict[str, dict[Labels, float]] = {}
    gauges: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        into = counters if family.type in _INCREASING else gauges
        for sample in family.samples:
            if sample.name.endswith("_created"):  # when a series began: a time, not a count
                continue
            labels = tuple(sorted(sample.labels.items()))
            into.setdefault(sample.name, {})[labels] = sample.value
    return Scrape(at, counters, gauges)


def label(labels: Labels, name: str) -> str:
    return dict(labels).get(name, "")
