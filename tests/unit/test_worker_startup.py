"""Before Faust starts, the worker checks its topics exist and says how to create them, and
sets up logging so that libraries' debug calls cost nothing."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest

from streamproc.adapters.logs import JsonFormatter
from streamproc.errors import ConfigError
from streamproc.worker.app import faust_worker
from streamproc.worker.wiring import require_topics, require_web_port


class FakeCluster:
    def __init__(self, *names: str) -> None:
        self._names = list(names)

    def list_topic_names(self) -> list[str]:
        return self._names


def test_present_topics_pass() -> None:
    require_topics(FakeCluster("a", "b", "c"), ["a", "b"])


def test_missing_topics_are_named_with_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        require_topics(FakeCluster("a"), ["a", "b.dlq", "b"])
    assert "topics missing in Kafka: b, b.dlq" in str(caught.value)
    assert "streamproc topics apply" in str(caught.value)


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The worker reconfigures the root logger and redirects sys.stdout and sys.stderr to
    it; the next tests get all three back."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    streams = sys.stdout, sys.stderr
    yield root
    sys.stdout, sys.stderr = streams
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("level", "expected"), [("warning", logging.WARNING), ("info", logging.INFO)]
)
@pytest.mark.parametrize("json_logs", [False, True])
def test_the_worker_logs_at_its_level_and_builds_no_debug_records(
    level: str, expected: int, json_logs: bool, root_logger: logging.Logger, tmp_path: Path
) -> None:
    app = faust.App("startup-test", store="memory://", datadir=str(tmp_path))
    worker = faust_worker(app, level, json_logs)
    try:
        worker._setup_logging()  # what the worker does when it starts
        assert root_logger.level == expected
        assert not logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG)
        formatters = [type(handler.formatter) for handler in root_logger.handlers]
        assert (JsonFormatter in formatters) == json_logs
    finally:
        # Its stdout/stderr redirect ends with the worker; left to the garbage collector, it
        # reset sys.stderr to the process's own in the middle of a later test (capsys saw
        # nothing): end it now, then the fixture puts pytest's streams back.
        worker.exit_stack.close()


def test_a_web_port_another_process_listens_on_is_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"STREAMPROC_WEB_PORT={port}.*its own"):
            require_web_port("127.0.0.1", port)
    require_web_port("127.0.0.1", port)  # free again
