"""Tool (no I/O): what a DLQ holds, from its records as `record_view` shows them: the dead
letters by reason (how many, the first and last time), by source topic and exception class,
and the first few of each reason as samples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamproc.adapters.kafka.dlq import EXCEPTION, MESSAGE, REASON, TOPIC
from streamproc.tools.top.sections import NONE, Section

_MESSAGE_CHARS = 100  # of an error message in the samples table
UNKNOWN = "unknown"  # a record without the header: not written by a worker


@dataclass(slots=True)
class ReasonCount:
    """One reason's dead letters: how many, the first and last record time, samples."""

    count: int = 0
    first: tuple[int, str] | None = None  # (epoch ms, UTC time)
    last: tuple[int, str] | None = None
    samples: list[Mapping[str, Any]] = field(default_factory=list)


class DlqSummary:
    """Dead letters added one by one, kept as counts and a few samples per reason."""

    def __init__(self, topic: str, samples: int = 3) -> None:
        self.topic = topic
        self._samples = samples
        self.reasons: dict[str, ReasonCount] = {}
        self.origins: Counter[tuple[str, str]] = Counter()  # (source topic, exception class)

    @property
    def total(self) -> int:
        return sum(counted.count for counted in self.reasons.values())

    def add(self, view: Mapping[str, Any]) -> None:
        headers = view["headers"]
        counted = self.reasons.setdefault(_header(headers, REASON), ReasonCount())
        counted.count += 1
        if view["timestamp"] is not None:
            stamp = (view["timestamp"], view["time"])
            counted.first = min(counted.first or stamp, stamp)
            counted.last = max(counted.last or stamp, stamp)
        if len(counted.samples) < self._samples:
            counted.samples.append(view)
        self.origins[(_header(headers, TOPIC), _header(headers, EXCEPTION))] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "dead_letters": self.total,
            "reasons": {
                reason: {
                    "count": counted.count,
                    "first": counted.first[1] if counted.first else None,
                    "last": counted.last[1] if counted.last else None,
                    "samples": counted.samples,
                }
                for reason, counted in self._by_count()
            },
            "origins": [
                {"source_topic": topic, "exception": exception, "count": count}
                for (topic, exception), count in self.origins.most_common()
            ],
        }

    def sections(self) -> list[Section]:
        """The tables: by reason, by origin, then the samples."""
        reasons = tuple(
            (reason, str(counted.count), _when(counted.first), _when(counted.last))
            for reason, counted in self._by_count()
        )
        origins = tuple(
            (topic, exception, str(count))
            for (topic, exception), count in self.origins.most_common()
        )
        samples = tuple(
            _sample_row(reason, view)
            for reason, counted in self._by_count()
            for view in counted.samples
        )
        return [
            Section(
                f"{self.topic}: {self.total} dead letters",
                ("reason", "count", "first", "last"),
                1,
                reasons,
            ),
            Section(
                "by source topic and exception", ("source topic", "exception", "count"), 2, origins
            ),
            Section(
                f"samples (at most {self._samples} per reason)",
                ("reason", "partition/offset", "time", "key", "message"),
                5,
                samples,
            ),
        ]

    def _by_count(self) -> list[tuple[str, ReasonCount]]:
        return sorted(self.reasons.items(), key=lambda item: (-item[1].count, item[0]))


def _header(headers: Mapping[str, Any], name: str) -> str:
    value = headers.get(name)
    return value if isinstance(value, str) and value else UNKNOWN


def _when(stamp: tuple[int, str] | None) -> str:
    return stamp[1] if stamp else NONE


def _sample_row(reason: str, view: Mapping[str, Any]) -> tuple[str, ...]:
    message = _header(view["headers"], MESSAGE).splitlines()[0]
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 3] + "..."
    key = (
        view["key"] if isinstance(view["key"], str) else NONE if view["key"] is None else "(bytes)"
    )
    return (reason, f"{view['partition']}/{view['offset']}", view["time"] or NONE, key, message)
