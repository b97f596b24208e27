"""Adapter: how log records are written: lines for a person, or JSON lines
(STREAMPROC_LOG_FORMAT=json), one object a line, for a log shipper to index: time, level,
logger, message, and the fields a call passed in `extra` (a dead letter's reason, event id,
topic, partition and offset)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

# What every LogRecord has; anything else on a record came from a call's `extra`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A record as one JSON object; values orjson cannot write are written as text."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line |= {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def logging_config(level: str, json: bool, stream: str, text: str) -> dict[str, Any]:
    """A logging.config.dictConfig: records from `level` up to `stream` (ext://sys.stderr),
    as JSON lines or in the `text` format."""
    formatter = {"()": JsonFormatter} if json else {"format": text}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": stream}
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
