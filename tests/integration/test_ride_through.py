"""A worker rides through a Redis that pauses, and notices a Redis that comes back empty: it
stays up, says what it is doing (/readyz, metrics), and loses or repeats nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from tests.conftest import REPO
from tests.harness.processes import RedisServer
from tests.integration.conftest import (
    CLEAN_ORDERS,
    Stack,
    Worker,
    new_group,
    start_worker,
    stop_worker,
)
from tests.integration.test_batch_consumer import (
    _all_outputs,
    _orders,
    _produce,
    _starts,
)

OUTAGES = "streamproc_outages_total"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to pause and restart."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def _wait(condition: Callable[[], bool], what: str, worker: Worker, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if worker.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(
                f"{what}: not so (worker exit {worker.process.poll()}):\n{worker.log_tail()}"
            )
        time.sleep(0.2)


def test_a_redis_paused_for_10_s_is_ridden_through_and_nothing_lost_or_repeated(
    stack: Stack, serde: AvroSerde, tmp_path: Path, redis_server: RedisServer
) -> None:
    run, events = uuid.uuid4().hex[:12], 4_000
    group = new_group(stack)
    starts = _starts(stack)
    orders = _orders(run, events)
    worker = start_worker(
        stack,
        group,
        tmp_path / "w",
        STREAMPROC_REDIS_URL=redis_server.url,
        STREAMPROC_REDIS_TIMEOUT_S="1",
    )
    try:
        producing = threading.Thread(target=_produce, args=(stack, serde, run, orders, 400.0))
        producing.start()
        _wait(
            lambda: worker.counter("streamproc_records_consumed_total", topic=CLEAN_ORDERS) > 500,
            "500 orders scored",
            worker,
        )
        redis_server.pause()
        _wait(lambda: worker.readiness()[0] == 503, "/readyz says not ready", worker)
        status, body = worker.readiness()
        assert any("redis unavailable" in reason for reason in body["reasons"]), body
        time.sleep(10)
        redis_server.resume()
        _wait(lambda: worker.readiness()[0] == 200, "/readyz ready again", worker, timeout_s=10)
        producing.join()
        clean, predicted = _all_outputs(stack, serde, run, starts, events, worker)
        wanted = {record["event_id"] for record in orders}
        assert set(clean) == wanted and set(predicted) == wanted
        assert max(clean.values()) == 1 and max(predicted.values()) == 1
        assert worker.counter(OUTAGES, dependency="redis") >= 1
        assert worker.process.poll() is None
    finally:
        stop_worker(worker)


def _state_cli(
    stack: Stack, group: str, redis_url: str, action: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "STREAMPROC_KAFKA_BOOTSTRAP": stack.bootstrap,
        "STREAMPROC_REDIS_URL": redis_url,
        "STREAMPROC_REDIS_NAMESPACE": group,
        "PATH": "",
    }
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streamproc.cli", "state", action],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


def test_a_redis_that_comes_back_empty_is_reported_degraded_until_accepted(
    stack: Stack, serde: AvroSerde, tmp_path: Path, redis_server: RedisServer
) -> None:
    run = uuid.uuid4().hex[:12]
    group = new_group(stack)
    worker = start_worker(stack, group, tmp_path / "w", STREAMPROC_REDIS_URL=redis_server.url)
    try:
        _produce(stack, serde, run, _orders(run, 300), 0)
        _wait(
            lambda: worker.counter("streamproc_records_consumed_total", topic=CLEAN_ORDERS) >= 300,
            "300 orders scored",
            worker,
        )
        assert worker.readiness()[0] == 200, worker.readiness()
        assert _state_cli(stack, group, redis_server.url, "show").returncode == 0
        assert worker.counter("streamproc_degraded") == 0

        redis_server.restart()  # no persistence: it comes back empty
        _produce(stack, serde, f"{run}b", _orders(f"{run}b", 300), 0)
        _wait(lambda: worker.counter("streamproc_degraded") == 1, "degraded reported", worker)
        assert worker.counter("streamproc_redis_state_lost_total") == 1
        status, body = worker.readiness()
        assert status == 503 and any("lost" in reason for reason in body["reasons"]), body
        shown = _state_cli(stack, group, redis_server.url, "show")
        assert shown.returncode == 1 and "lost this deployment's state" in shown.stdout

        # a worker started now sees the mark as well
        stop_worker(worker)
        worker = start_worker(stack, group, tmp_path / "w2", STREAMPROC_REDIS_URL=redis_server.url)
        _produce(stack, serde, f"{run}c", _orders(f"{run}c", 10), 0)
        _wait(
            lambda: worker.counter("streamproc_degraded") == 1, "degraded after a restart", worker
        )

        assert _state_cli(stack, group, redis_server.url, "accept").returncode == 0
        _produce(stack, serde, f"{run}d", _orders(f"{run}d", 10), 0)
        _wait(lambda: worker.counter("streamproc_degraded") == 0, "degraded cleared", worker)
        assert worker.readiness()[0] == 200
        assert worker.process.poll() is None
    finally:
        stop_worker(worker)
