"""Core: the error types every layer raises, each saying what went wrong and what to do."""

from __future__ import annotations

from typing import Literal

INTERNAL_ERROR = "internal_error"  # the reason code of an event that met a bug of ours

DecodeReason = Literal["not_wire_format", "unknown_schema_id", "truncated", "schema_mismatch"]


class StreamprocError(Exception):
    """Base of every error streamproc raises on purpose."""


class EventRejected(StreamprocError):
    """One event cannot be processed; it goes to the DLQ with `reason`, the rest go on."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class DecodeError(EventRejected):
    """The bytes of a record are not a decodable Confluent-framed Avro value."""

    def __init__(self, reason: DecodeReason, message: str) -> None:
        super().__init__(reason, message)
        self.reason: DecodeReason = reason


class ConfigError(StreamprocError):
    """Settings or a declaration file are wrong; the message names the place and the fix."""


class InfraError(StreamprocError):
    """Kafka, Redis or the schema registry is unreachable past the retry budget."""


class Unavailable(InfraError):
    """A dependency did not answer (connection refused or reset, a timeout, a server still
    loading): the same call may well succeed in a moment. `dependency` names it."""

    def __init__(self, dependency: str, message: str) -> None:
        super().__init__(message)
        self.dependency = dependency


def invalid_yaml(path: object, error: Exception) -> ConfigError:
    """A declaration file that is not YAML: its path, and the line when the parser knows it."""
    mark = getattr(error, "problem_mark", None)
    where = f":{mark.line + 1}" if mark is not None else ""
    return ConfigError(f"{path}{where}: not valid YAML: {error}")
