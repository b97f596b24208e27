"""librdkafka's log lines and errors reach Python logging once per problem, and every Kafka
client streamproc makes is built with that config."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from confluent_kafka import KafkaError

from streamproc.adapters.kafka.client_logs import DedupLog, client_config
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
