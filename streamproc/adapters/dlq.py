"""Edge: dead-letter records with the headers Kafka Streams writes (KIP-1034), plus our reason."""

from __future__ import annotations

import traceback

from streamproc.events import Headers, OutRecord, Rejection

EXCEPTION = "__streams.errors.exception"
MESSAGE = "__streams.errors.message"
STACKTRACE = "__streams.errors.stacktrace"
TOPIC = "__streams.errors.topic"
PARTITION = "__streams.errors.partition"
OFFSET = "__streams.errors.offset"
REASON = "streamproc.errors.reason"

_ERROR_HEADERS = frozenset({EXCEPTION, MESSAGE, STACKTRACE, TOPIC, PARTITION, OFFSET, REASON})


def dlq_topic(source_topic: str) -> str:
    return f"{source_topic}.dlq"


def dead_letter(rejection: Rejection) -> OutRecord:
    """The original key, value and headers, plus why and where the record failed.

    Error headers from an earlier trip through a DLQ are replaced, not repeated, so a
    replayed record that fails again carries one consistent set.
    """
    source = rejection.source
    error = rejection.error
    kept: Headers = tuple((k, v) for k, v in source.headers if k not in _ERROR_HEADERS)
    added = (
        (EXCEPTION, _qualified_name(error).encode()),
        (MESSAGE, str(error).encode()),
        (STACKTRACE, "".join(traceback.format_exception(error)).encode()),
        (TOPIC, source.topic.encode()),
        (PARTITION, str(source.partition).encode()),
        (OFFSET, str(source.offset).encode()),
        (REASON, rejection.reason.encode()),
    )
    return OutRecord(
        dlq_topic(source.topic), source.key, source.value, (*kept, *added), source.timestamp_ms
    )


def _qualified_name(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"
