"""Adapter: what every confluent-kafka client of streamproc shares: librdkafka's log lines and
errors go through Python logging, one warning per distinct problem, the repeats at debug.

Left to itself librdkafka prints to stderr: a broker that refuses connections gives one line
per reconnect (every 50-100 ms), hundreds before the caller's timeout says the same once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from streamproc.config.kafka import KafkaConnection

LOGGER_NAME = "streamproc.kafka"

# A problem's text without what changes from one occurrence to the next.
_CLIENT_LINE = "%s [%s] %s"  # how confluent-kafka logs: facility, client name, text
_THREAD = re.compile(r"^\[thrd:[^\]]*\]: ")
_VARYING = re.compile(r"\d+ms\b|, \d+ identical error\(s\) suppressed")


class DedupLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The `logger` and `error_cb` of librdkafka clients: the first occurrence of a problem
    is a warning (an error if fatal), the same problem again within `repeat_after_s` is at
    debug. Not above warning: the client retries, and its caller decides what is fatal."""

    def __init__(
        self,
        logger: logging.Logger,
        repeat_after_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_problems: int = 1000,
    ) -> None:
        super().__init__(logger, {})
        self._repeat_after_s = repeat_after_s
        self._clock = clock
        self._max_problems = max_problems
        self._last_warned: dict[str, float] = {}
        self._lock = threading.Lock()  # clients log from the threads that poll them

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """What confluent-kafka calls, with ("%s [%s] %s", facility, client name, text)."""
        if msg == _CLIENT_LINE and len(args) == _CLIENT_LINE.count("%s"):
            facility, client, text = (str(arg) for arg in args)
            text = _THREAD.sub("", text)
            self._emit(level, f"{client} {facility}", text)
        else:
            self.logger.log(level, msg, *args, **kwargs)

    def error_cb(self, error: Any) -> None:
        """Client-level errors (all brokers down, a connection lost, fatal errors)."""
        level = logging.CRITICAL if error.fatal() else logging.ERROR
        self._emit(level, str(error.name()), str(error.str()))

    def _emit(self, level: int, source: str, text: str) -> None:
        if level >= logging.WARNING:
            if not self._first(text):
                level = logging.DEBUG
            elif level < logging.CRITICAL:
                level = logging.WARNING
        self.logger.log(level, "Kafka (%s): %s", source, text)

    def _first(self, text: str) -> bool:
        """Whether `text` is a problem not warned of within `repeat_after_s`."""
        key = _VARYING.sub("#", text)
        now = self._clock()
        with self._lock:
            last = self._last_warned.get(key)
            if last is not None and now - last < self._repeat_after_s:
                return False
            if len(self._last_warned) >= self._max_problems:
                self._last_warned.clear()  # a bound: texts that vary without end
            self._last_warned[key] = now
            return True


_LOG = DedupLog(logging.getLogger(LOGGER_NAME))


def client_config(kafka: KafkaConnection, **overrides: Any) -> dict[str, Any]:
    """The config of every confluent-kafka client streamproc makes: the connection's brokers
    and security, and the logger. librdkafka takes the logger only at construction, and hands
    its lines over on poll(), flush() or consume()."""
    return {
        **kafka.properties(),
        "logger": _LOG,
        "error_cb": _LOG.error_cb,
        **overrides,
    }
