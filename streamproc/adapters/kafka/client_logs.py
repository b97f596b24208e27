"""Adapter: what every confluent-kafka client of streamproc shares: librdkafka's log lines and
errors go through Python logging, one warning per distinct problem, the repeats at debug; and
a refused login or TLS handshake stops the client's caller instead of being retried for ever.

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

from confluent_kafka import KafkaError, KafkaException

from streamproc.config.kafka import KafkaConnection
from streamproc.errors import ConfigError, InfraError

LOGGER_NAME = "streamproc.kafka"

# A problem's text without what changes from one occurrence to the next.
_CLIENT_LINE = "%s [%s] %s"  # how confluent-kafka logs: facility, client name, text
_THREAD = re.compile(r"^\[thrd:[^\]]*\]: ")
_VARYING = re.compile(r"\d+ms\b|, \d+ identical error\(s\) suppressed")

# Errors librdkafka retries for ever where a retry cannot help: the cluster refused the
# credentials (a wrong password, a user deleted), or TLS failed (a certificate not trusted, no
# protocol or cipher in common). A disconnect during the handshake is _TRANSPORT, not _SSL: a
# broker going down refuses nobody.
_LOGIN = (
    "Kafka refused the login: {text}; check STREAMPROC_KAFKA_SASL_USERNAME, "
    "STREAMPROC_KAFKA_SASL_PASSWORD and STREAMPROC_KAFKA_SASL_MECHANISM, and that the user "
    "exists on the cluster"
)
_REFUSALS = {
    KafkaError._AUTHENTICATION: _LOGIN,
    KafkaError.SASL_AUTHENTICATION_FAILED: _LOGIN,
    KafkaError._SSL: "TLS with Kafka failed: {text}; check STREAMPROC_KAFKA_SSL_CA_LOCATION (the "
    "CA that signed the brokers' certificates) and STREAMPROC_KAFKA_SECURITY_PROTOCOL",
}
_SLICE_S = 0.5  # how long a blocking call runs before the client's callbacks are served


class KafkaRefused(ConfigError):
    """Kafka refused this client's credentials or TLS: retrying cannot help, the settings or
    the cluster's users must change. Raised from the poll, flush or consume that serves it."""


class DedupLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The `logger` and `error_cb` of librdkafka clients: the first occurrence of a problem
    is a warning (an error if fatal), the same problem again within `repeat_after_s` is at
    debug. Not above warning: the client retries, and its caller decides what is fatal;
    except a refusal (login, TLS), which raises KafkaRefused: librdkafka would retry it for
    ever."""

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
            self.report(level, f"{client} {facility}", text)
        else:
            self.logger.log(level, msg, *args, **kwargs)

    def error_cb(self, error: Any) -> None:
        """Client-level errors (all brokers down, a connection lost, fatal errors)."""
        level = logging.CRITICAL if error.fatal() else logging.ERROR
        self.report(level, str(error.name()), str(error.str()))
        refusal = _REFUSALS.get(error.code())
        if refusal is not None:
            raise KafkaRefused(refusal.format(text=error.str()))

    def report(self, level: int, source: str, text: str) -> None:
        """A problem `source` had, at `level`, once a while: see the class."""
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


def check_consumed_error(error: KafkaError, where: str) -> None:
    """An error event a consume returned in place of a record: a fatal one raises
    InfraError (the worker stops); any other the client retries by itself (a broker gone
    and back, a leader moving), so it is only logged, once a while for the same problem.
    The end of a partition is no problem at all."""
    if error.fatal():
        raise InfraError(f"{where}: {error.str()}")
    if error.code() != KafkaError._PARTITION_EOF:
        _LOG.report(logging.WARNING, where, error.str())


def client_config(kafka: KafkaConnection, **overrides: Any) -> dict[str, Any]:
    """The config of every confluent-kafka client streamproc makes: the connection's brokers
    and security, and the logger. librdkafka takes the logger only at construction, and hands
    its lines over on poll(), flush() or consume()."""
    return {
        **kafka.properties(),
        # librdkafka backs off up to 10 s between reconnects: a broker back from a restart
        # waited that long for the workers; a second is enough to spare it a storm
        "reconnect.backoff.max.ms": 1000,
        "logger": _LOG,
        "error_cb": _LOG.error_cb,
        **overrides,
    }


def list_topics(client: Any, timeout_s: float, topic: str | None = None) -> Any:
    """`client.list_topics` within `timeout_s`, asked in slices that double from 0.5 s with
    the client's callbacks served between them: librdkafka waits out the whole timeout for a
    broker it reaches but may not use, while a refusal (KafkaRefused) is known within the
    first second. An admin client, a producer, or a consumer not yet assigned (its poll
    would take a record). Raises KafkaException as list_topics does once time is up."""
    deadline = time.monotonic() + timeout_s
    slice_s = _SLICE_S
    while True:
        left = deadline - time.monotonic()
        try:
            return client.list_topics(topic, timeout=max(min(slice_s, left), 0.001))
        except KafkaException:
            client.poll(0)  # error_cb raises KafkaRefused here
            if slice_s >= left:
                raise
        slice_s *= 2


def flush(producer: Any, timeout_s: float) -> int:
    """`producer.flush` within `timeout_s`, in short slices: confluent-kafka's flush serves a
    callback that raises (KafkaRefused) but raises only once its whole timeout has passed.
    Returns the records still not delivered."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = int(producer.flush(max(min(_SLICE_S, deadline - time.monotonic()), 0)))
        if left == 0 or time.monotonic() >= deadline:
            return left
