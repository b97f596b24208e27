"""Tool (no I/O): two rounds of scrapes into what `streamproc top` shows: counters' rates over
the interval and their totals, and gauges now, over all the workers of a deployment."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streamproc.tools.top.exposition import Labels, Scrape, Series

# A round of scrapes: each URL's metrics, or why it did not answer.
Round = Mapping[str, Scrape | str]


@dataclass(frozen=True, slots=True)
class Window:
    """What the workers that answered say, combined."""

    rates: Series  # counters' increase per second since the previous round, summed
    totals: Series  # counters now, summed
    # Gauges now, the highest: a worker in an outage shows, and a partition two workers
    # report during a rebalance counts once.
    gauges: Series
    up: tuple[str, ...]
    down: Mapping[str, str]  # URL → why it did not answer


def window(previous: Round, current: Round) -> Window:
    """`previous` may be empty (the first round): then there are totals but no rates."""
    rates: dict[str, dict[Labels, float]] = {}
    totals: dict[str, dict[Labels, float]] = {}
    gauges: dict[str, dict[Labels, float]] = {}
    for url, now in current.items():
        if isinstance(now, str):
            continue
        _merge(totals, now.counters, operator.add)
        _merge(gauges, now.gauges, max)
        before = previous.get(url)
        if isinstance(before, Scrape) and now.at > before.at:
            _merge(rates, _per_second(before, now), operator.add)
    return Window(
        rates=rates,
        totals=totals,
        gauges=gauges,
        up=tuple(url for url, now in current.items() if isinstance(now, Scrape)),
        down={url: now for url, now in current.items() if isinstance(now, str)},
    )


def _per_second(before: Scrape, now: Scrape) -> Series:
    """Per worker, so that one worker's restart is a reset of its own counters only."""
    seconds = now.at - before.at
    return {
        name: {
            labels: _increase(before.counters.get(name, {}).get(labels, 0.0), value) / seconds
            for labels, value in series.items()
        }
        for name, series in now.counters.items()
    }


def _increase(before: float, now: float) -> float:
    """Prometheus' rule: a counter that went down was reset (its process restarted) and has
    counted `now` since."""
    return now - before if now >= before else now


def _merge(
    into: dict[str, dict[Labels, float]],
    series: Series,
    combine: Callable[[float, float], float],
) -> None:
    for name, values in series.items():
        merged = into.setdefault(name, {})
        for labels, value in values.items():
            merged[labels] = combine(merged[labels], value) if labels in merged else value
