"""librdkafka's log lines and errors reach Python logging once per problem, and every Kafka
client streamproc makes is built with that config."""

from __future__ import annotations

import ast
import logging
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamproc.adapters.kafka.client_logs import (
    DedupLog,
    KafkaRefused,
    client_config,
    flush,
    list_topics,
)
from streamproc.config.kafka import KafkaConnection
from tests.conftest import REPO

REFUSED = (
    "[thrd:127.0.0.1:9999/bootstrap]: 127.0.0.1:9999/bootstrap: Connect to ipv4#127.0.0.1:9999 "
    "failed: Connection refused (after {ms}ms in state CONNECT)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(clock: Clock) -> DedupLog:
    logger = logging.getLogger("tests.kafka_logging")
    logger.setLevel(logging.DEBUG)
    return DedupLog(logger, repeat_after_s=300, clock=clock)


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records]


def _librdkafka(log: DedupLog, level: int, text: str, facility: str = "FAIL") -> None:
    """As confluent-kafka calls its `logger` when a client is polled."""
    log.log(level, "%s [%s] %s", facility, "rdkafka#producer-1", text)


def test_a_repeated_problem_is_one_warning_then_debug(
    log: DedupLog, caplog: pytest.LogCaptureFixture
) -> None:
    for ms in (0, 1, 0, 2):
        _librdkafka(log, logging.ERROR, REFUSED.format(ms=ms))

    levels = [level for level, _ in _records(caplog)]
    assert levels == ["WARNING", "DEBUG", "DEBUG", "DEBUG"]
    assert _records(caplog)[0][1] == (
        "Kafka (rdkafka#producer-1 FAIL): 127.0.0.1:9999/bootstrap: Connect to "
        "ipv4#127.0.0.1:9999 failed: Connection refused (after 0ms in state CONNECT)"
    )


def test_the_same_text_from_the_error_callback_is_the_same_problem(
    log: DedupLog, caplog: pytest.LogCaptureFixture
) -> None:
    _librdkafka(log, logging.ERROR, REFUSED.format(ms=0))
    log.error_cb(KafkaError(KafkaError._TRANSPORT, REFUSED.format(ms=3).split("]: ", 1)[1]))
    log.error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))

    assert [level for level, _ in _records(caplog)] == ["WARNING", "DEBUG", "WARNING"]
    assert _records(caplog)[2][1] == "Kafka (_ALL_BROKERS_DOWN): 1/1 brokers are down"


def test_a_problem_is_warned_of_again_after_a_quiet_while(
    log: DedupLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    _librdkafka(log, logging.WARNING, REFUSED.format(ms=0))
    clock.now = 299
    _librdkafka(log, logging.WARNING, REFUSED.format(ms=0))
    clock.now = 600
    _librdkafka(log, logging.WARNING, REFUSED.format(ms=0))

    assert [level for level, _ in _records(caplog)] == ["WARNING", "DEBUG", "WARNING"]


def test_details_keep_their_level_and_a_fatal_error_stays_critical(
    log: DedupLog, caplog: pytest.LogCaptureFixture
) -> None:
    _librdkafka(log, logging.DEBUG, "[thrd:main]: Request metadata", facility="METADATA")
    _librdkafka(log, logging.DEBUG, "[thrd:main]: Request metadata", facility="METADATA")
    _librdkafka(log, logging.INFO, "[thrd:app]: Purging 1 unserved events", facility="BGQUEUE")
    log.error_cb(KafkaError(KafkaError._FENCED, "producer fenced", fatal=True))

    assert _records(caplog) == [
        ("DEBUG", "Kafka (rdkafka#producer-1 METADATA): Request metadata"),
        ("DEBUG", "Kafka (rdkafka#producer-1 METADATA): Request metadata"),
        ("INFO", "Kafka (rdkafka#producer-1 BGQUEUE): Purging 1 unserved events"),
        ("CRITICAL", "Kafka (_FENCED): producer fenced"),
    ]


def test_the_memory_of_problems_is_bounded(clock: Clock) -> None:
    log = DedupLog(logging.getLogger("tests.kafka_logging"), clock=clock, max_problems=3)
    for topic in "abcdef":
        _librdkafka(log, logging.WARNING, f"topic {topic} is gone")
    assert len(log._last_warned) <= 3


def test_the_client_config_carries_the_log_and_takes_overrides() -> None:
    config = client_config(KafkaConnection("127.0.0.1:9092"), **{"group.id": "g", "linger.ms": 5})

    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert isinstance(config["logger"], DedupLog)
    assert config["error_cb"] == config["logger"].error_cb
    assert (config["group.id"], config["linger.ms"]) == ("g", 5)


def test_every_kafka_client_of_streamproc_is_built_from_the_client_config() -> None:
    """librdkafka takes a logger only at construction: a client made without it prints every
    reconnect to stderr."""
    clients = {"Consumer", "Producer", "AdminClient"}
    found = []
    for path in sorted((REPO / "streamproc").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
            if isinstance(node, ast.Call) and name in clients:
                where = f"{Path(path).relative_to(REPO)}:{node.lineno}"
                found.append(where)
                first = node.args[0] if node.args else None
                assert (
                    isinstance(first, ast.Call) and getattr(first.func, "id", "") == "client_config"
                ), f"{where}: {name}(...) without client_config(...)"
    assert len(found) >= 5, found  # the AST walk does find the clients


LOGIN_FAILED = (
    "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
)
NOT_TRUSTED = (
    "sasl_ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL "
    "routines::certificate verify failed: broker certificate could not be verified"
)


@pytest.mark.parametrize(
    ("code", "text", "names"),
    [
        (KafkaError._AUTHENTICATION, LOGIN_FAILED, "STREAMPROC_KAFKA_SASL_PASSWORD"),
        (KafkaError.SASL_AUTHENTICATION_FAILED, "bad login", "STREAMPROC_KAFKA_SASL_USERNAME"),
        (KafkaError._SSL, NOT_TRUSTED, "STREAMPROC_KAFKA_SSL_CA_LOCATION"),
    ],
)
def test_a_refused_login_or_certificate_raises_instead_of_being_retried(
    log: DedupLog, caplog: pytest.LogCaptureFixture, code: int, text: str, names: str
) -> None:
    with pytest.raises(KafkaRefused) as refused:
        log.error_cb(KafkaError(code, text))
    assert text in str(refused.value)
    assert names in str(refused.value)
    assert _records(caplog)[0][0] == "WARNING"  # logged as well, as any client error


def test_a_broker_going_away_mid_handshake_is_retried() -> None:
    """librdkafka reports a disconnect during the TLS handshake as _TRANSPORT: not a refusal."""
    log = DedupLog(logging.getLogger("tests.kafka_logging"))
    log.error_cb(
        KafkaError(KafkaError._TRANSPORT, "SSL handshake failed: Disconnected: connection closed")
    )
    log.error_cb(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))


class SlowCluster:
    """A client whose metadata never comes; its error callback raises on the `refuse_at`th
    poll (None: never), as a client with a refused login does once it has tried."""

    def __init__(self, refuse_at: int | None) -> None:
        self.timeouts: list[float] = []
        self.polls = 0
        self._refuse_at = refuse_at

    def list_topics(self, topic: str | None, timeout: float) -> None:
        self.timeouts.append(timeout)
        time.sleep(timeout)  # as librdkafka waits for a broker it cannot use
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))

    def poll(self, timeout: float) -> None:
        self.polls += 1
        if self.polls == self._refuse_at:
            raise KafkaRefused("Kafka refused the login")


def test_metadata_is_asked_in_growing_slices_with_callbacks_served_between() -> None:
    client = SlowCluster(refuse_at=2)
    with pytest.raises(KafkaRefused):
        list_topics(client, timeout_s=60)
    assert client.timeouts == [0.5, 1.0]  # refused on the second poll, not after 60 s


def test_metadata_that_never_comes_raises_the_clients_error_within_the_timeout() -> None:
    client = SlowCluster(refuse_at=None)
    started = time.monotonic()
    with pytest.raises(KafkaException):
        list_topics(client, timeout_s=1.2)
    assert 1.2 <= time.monotonic() - started < 1.5
    assert client.timeouts[0] == 0.5
    assert client.polls == len(client.timeouts)


class Undeliverable:
    """A producer with one record librdkafka never delivers."""

    def __init__(self) -> None:
        self.flushes: list[float] = []

    def flush(self, timeout: float) -> int:
        self.flushes.append(timeout)
        return 1


def test_flush_waits_in_short_slices_and_returns_what_is_left() -> None:
    producer = Undeliverable()
    assert flush(producer, 1.0) == 1
    assert len(producer.flushes) >= 2
    assert max(producer.flushes) <= 0.5
