"""Adapter: dead-letter records with the headers Kafka Streams writes (KIP-1034), and our
reason."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence

from streamproc.records import Envelope, Headers, OutRecord, Rejection, header

# One line per dead letter, at info: silence it with this logger's level.
dead_letters_log = logging.getLogger("streamproc.dead_letters")

EXCEPTION = "__streams.errors.exception"
MESSAGE = "__streams.errors.message"
STACKTRACE = "__streams.errors.stacktrace"
TOPIC = "__streams.errors.topic"
PARTITION = "__streams.errors.partition"
OFFSET = "__streams.errors.offset"
REASON = "streamproc.errors.reason"
DROPPED = "streamproc.errors.dropped"  # what of the original record did not fit: "value", ...
# On a dead letter re-sent to its source topic: "<dlq topic>/<partition>/<offset>" it was at.
REDRIVE = "streamproc.redrive"
_DLQ_SUFFIX = ".dlq"

# Why a dead letter cannot be re-sent.
NOT_A_DEAD_LETTER = "not_a_dead_letter"  # no source topic header: not written by a worker
VALUE_DROPPED = "value_dropped"  # left out for size: there is nothing to re-send

_ERROR_HEADERS = frozenset(
    {EXCEPTION, MESSAGE, STACKTRACE, TOPIC, PARTITION, OFFSET, REASON, DROPPED}
)

# The largest record the worker sends: the producer's message.max.bytes (BatchSender sets it).
# A topic at the broker's default max.message.bytes (1,048,588 bytes per record batch) takes
# any such record with its batch header; a topic set lower refuses it on delivery.
MAX_RECORD_BYTES = 1_000_000
RECORD_TOO_LARGE = "record_too_large"  # an output, or a dead letter, over a size limit
RECORD_REFUSED = "record_refused"  # an output Kafka refuses for itself (e.g. its timestamp)

# An error about a huge value may quote it, and the stack trace quotes the message again.
MESSAGE_MAX_BYTES = 4_096
STACKTRACE_MAX_BYTES = 8_192
_LINE_MAX_CHARS = 1_024  # a long line cut alone keeps the trace's frames and chained errors
_CUT_RESERVE = 48  # room for the cut marker


def log_dead_letters(rejections: Sequence[Rejection]) -> None:
    """A line per dead letter: its reason, event id and where it was read. Never the error's
    text nor the record's values: either may hold personal data (the DLQ record has both)."""
    if not dead_letters_log.isEnabledFor(logging.INFO):
        return
    for rejection in rejections:
        source = rejection.source
        fields = {
            "reason": rejection.reason,
            "event_id": rejection.event_id,
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
        }
        dead_letters_log.info(
            "dead letter: %s, event %s, read at %s[%d]@%d",
            rejection.reason,
            rejection.event_id or "unknown",
            source.topic,
            source.partition,
            source.offset,
            extra=fields,
        )


def dlq_topic(source_topic: str) -> str:
    return f"{source_topic}{_DLQ_SUFFIX}"


def dlq_of(topic: str) -> str:
    """`topic` when it is a DLQ, else the DLQ beside it."""
    return topic if topic.endswith(_DLQ_SUFFIX) else dlq_topic(topic)


def reason_of(dead: Envelope) -> str:
    """A dead letter's reason code ("unknown" on a record that has none)."""
    reason = header(dead.headers, REASON)
    return reason.decode(errors="replace") if reason else "unknown"


def is_redriven(record: Envelope) -> bool:
    return any(name == REDRIVE for name, _ in record.headers)


def redriven(dead: Envelope) -> OutRecord | str:
    """What re-sending a dead letter sends: to the topic it was read from, its original key,
    value and headers (without the error headers), marked with where in the DLQ it was; or
    why it cannot be re-sent (NOT_A_DEAD_LETTER, VALUE_DROPPED).

    No timestamp: the broker stamps it when it is re-sent. The original one may be older than
    the source topic's retention, and the worker's latency counts from it; the event's own
    time is in its value."""
    source = header(dead.headers, TOPIC)
    if not source:
        return NOT_A_DEAD_LETTER
    if header(dead.headers, DROPPED) is not None:
        return VALUE_DROPPED
    kept = tuple((k, v) for k, v in dead.headers if k not in _ERROR_HEADERS and k != REDRIVE)
    marker = f"{dead.topic}/{dead.partition}/{dead.offset}".encode()
    return OutRecord(source.decode(), dead.key, dead.value, (*kept, (REDRIVE, marker)))


def dead_letter(rejection: Rejection, max_bytes: int = MAX_RECORD_BYTES) -> OutRecord:
    """The original key, value and headers, plus why and where the record failed.

    Error headers from an earlier trip through a DLQ are replaced, not repeated, so a
    replayed record that fails again carries one consistent set. A record that would not fit
    in `max_bytes` leaves out its value, then its key and headers too (named in the
    `streamproc.errors.dropped` header); topic, partition and offset still say where it is.
    """
    source = rejection.source
    error = rejection.error
    kept: Headers = tuple((k, v) for k, v in source.headers if k not in _ERROR_HEADERS)
    added = (
        (EXCEPTION, _qualified_name(error).encode()),
        (MESSAGE, bounded(str(error), MESSAGE_MAX_BYTES)),
        (STACKTRACE, _stacktrace(error)),
        (TOPIC, source.topic.encode()),
        (PARTITION, str(source.partition).encode()),
        (OFFSET, str(source.offset).encode()),
        (REASON, rejection.reason.encode()),
    )
    topic, stamp = dlq_topic(source.topic), source.timestamp_ms
    whole = OutRecord(topic, source.key, source.value, (*kept, *added), stamp)
    if wire_size(whole) <= max_bytes:
        return whole
    without_value = OutRecord(topic, source.key, None, (*kept, *added, (DROPPED, b"value")), stamp)
    if wire_size(without_value) <= max_bytes:
        return without_value
    return OutRecord(topic, None, None, (*added, (DROPPED, b"value,key,headers")), stamp)


def reference(rejection: Rejection) -> OutRecord:
    """A dead letter that only says where the record is: for a DLQ that refused the whole one."""
    return dead_letter(rejection, max_bytes=0)


def wire_size(record: OutRecord) -> int:
    """At least what librdkafka counts against message.max.bytes: a record's 36 bytes of
    framing, and up to 10 per header for its two length varints."""
    headers = sum(len(name.encode()) + len(value or b"") + 10 for name, value in record.headers)
    return 36 + len(record.key or b"") + len(record.value or b"") + headers


def bounded(text: str, max_bytes: int) -> bytes:
    """`text` in UTF-8, cut to at most `max_bytes` with a marker saying how much was cut."""
    data = text.encode(errors="backslashreplace")  # str(error) may hold lone surrogates
    if len(data) <= max_bytes:
        return data
    head = data[: max(max_bytes - _CUT_RESERVE, 0)].decode(errors="ignore").encode()
    return head + f" ... [cut {len(data) - len(head):,} of {len(data):,} bytes]".encode()


def _stacktrace(error: BaseException) -> bytes:
    lines = "".join(traceback.format_exception(error)).split("\n")
    short = (
        line if len(line) <= _LINE_MAX_CHARS else bounded(line, _LINE_MAX_CHARS).decode()
        for line in lines
    )
    return bounded("\n".join(short), STACKTRACE_MAX_BYTES)


def _qualified_name(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"
