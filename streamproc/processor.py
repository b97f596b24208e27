"""Core: the one place where a stage's steps are chained, one batch at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamproc.errors import EventRejected
from streamproc.events import BatchResult, Envelope, OutRecord, Rejection

INTERNAL_ERROR = "internal_error"


class Codec(Protocol):
    """Turns record values into dicts and back (the Avro serde at the edge implements it)."""

    def decode(self, data: bytes | None, expected_name: str | None = None) -> dict[str, Any]: ...

    def encode(self, topic: str, schema_name: str, record: Mapping[str, Any]) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Route:
    """Which schema a stage reads from its source topic and writes to its sink topic."""

    source_topic: str
    source_schema: str
    sink_topic: str
    sink_schema: str


def forward_batch(batch: Sequence[Envelope], route: Route, codec: Codec) -> BatchResult:
    """Decode each record and re-encode it for the sink; a failure rejects that record only.

    Input order is kept, so per-key (per-partition) order holds on the sink.
    """
    result = BatchResult()
    for envelope in batch:
        try:
            record = codec.decode(envelope.value, route.source_schema)
            value = codec.encode(route.sink_topic, route.sink_schema, record)
        except EventRejected as exc:
            result.rejections.append(Rejection(envelope, exc.reason, exc))
        except Exception as exc:  # a bug must cost one event, never the partition
            result.rejections.append(Rejection(envelope, INTERNAL_ERROR, exc))
        else:
            result.outputs.append(
                OutRecord(
                    route.sink_topic,
                    envelope.key,
                    value,
                    tuple(envelope.headers),
                    envelope.timestamp_ms,
                )
            )
    return result
