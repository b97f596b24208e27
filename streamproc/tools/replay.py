"""`streamproc replay`: a deployment version rebuilt from the log beside the serving one.

The replay is a worker of the new version (its own consumer group, Redis namespace, model
lineage and output topics: config/deployment.py) run as a child process with replay-sized
batches, while this process reports its progress from the group's committed offsets against
the log's end: records done, rate, ETA; then that it has caught up, and from then on it follows
the log as a shadow until stopped (or stops with --until-caught-up).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from streamproc.adapters.kafka.admin import committed_offsets, watermarks
from streamproc.config.kafka import KafkaConnection

# The replay worker's settings: whole fetches, big batches, few commits; no latency target.
REPLAY_WORKER_SETTINGS = {
    "STREAMPROC_BATCH_SIZE": "5000",
    "STREAMPROC_FETCH_WAIT_MS": "200",
    "STREAMPROC_FETCH_MIN_BYTES": "4000000",
    "STREAMPROC_COMMIT_INTERVAL_S": "1",
    "STREAMPROC_PRODUCE_LINGER_MS": "50",
}
STOP_WAIT_S = 60.0  # for the worker to stop cleanly before it is killed


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """What to run and watch: the worker's environment, the topics its group reads."""

    version: str
    group: str
    kafka: KafkaConnection
    topics: Sequence[str]  # the raw topic first, then the version's scored topic
    worker_env: Mapping[str, str]
    log_path: Path
    interval_s: float = 2.0
    caught_up_records: int = 1000  # left behind the log's end, all topics together
    until_caught_up: bool = False


@dataclass(frozen=True, slots=True)
class Position:
    """Where the group stands on its topics: records done since the start, and left."""

    done: int
    left: int


def position(kafka: KafkaConnection, group: str, topics: Sequence[str]) -> Position:
    """Per topic, the group's committed offsets (a partition without one: at its first
    record still kept) against the high watermarks."""
    done = left = 0
    for topic in topics:
        committed = committed_offsets(kafka, group, topic)
        for partition, (low, high) in watermarks(kafka, topic).items():
            at = max(committed.get(partition, low), low)
            done += at - low
            left += max(high - at, 0)
    return Position(done, left)


class ProgressReport:
    """Turns successive positions into lines: records, share, rate, ETA; and caught up."""

    def __init__(self, version: str, caught_up_records: int, out: TextIO) -> None:
        self._version = version
        self._threshold = caught_up_records
        self._out = out
        self._started = 0.0
        self._first: Position | None = None
        self._last: tuple[float, Position] | None = None
        self.caught_up_at: float | None = None

    def see(self, now: float, at: Position) -> bool:
        """Prints a line for `at`; True the first time the replay is caught up."""
        if self._first is None:
            self._first, self._started = at, now
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (at.done - self._last[1].done) / (now - self._last[0])
        self._last = (now, at)
        total = at.done + at.left
        share = 100.0 * at.done / total if total else 100.0
        if self.caught_up_at is None and at.left <= self._threshold:
            self.caught_up_at = now
            replayed = at.done - self._first.done
            seconds = now - self._started
            self._print(
                f"replay {self._version}: caught up: {replayed:,} records in {seconds:,.1f} s "
                f"({replayed / seconds if seconds else 0:,.0f} records/s), {at.left:,} behind "
                "the log's end; following it as a shadow from now on"
            )
            return True
        eta = f"ETA {at.left / rate:,.0f} s" if rate > 0 else "ETA unknown"
        state = "following" if self.caught_up_at is not None else eta
        self._print(
            f"replay {self._version}: {at.done:,} of {total:,} records ({share:.1f}%), "
            f"{rate:,.0f} records/s, {at.left:,} behind, {state}"
        )
        return False

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)


def run_replay(
    plan: ReplayPlan,
    out: TextIO = sys.stdout,
    measure: Callable[[], Position] | None = None,
) -> int:
    """Runs the replay's worker and reports on it until it has caught up (with
    until_caught_up) or until SIGINT/SIGTERM; the exit status: 0, or the worker's own when
    it stopped by itself."""
    look = measure or (lambda: position(plan.kafka, plan.group, plan.topics))
    report = ProgressReport(plan.version, plan.caught_up_records, out)
    plan.log_path.parent.mkdir(parents=True, exist_ok=True)
    with plan.log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streamproc.cli", "worker"],
            env={**os.environ, **plan.worker_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C reaches it through us, and is waited for
        )
    print(
        f"replay {plan.version}: worker {worker.pid} started (group {plan.group}); its log: "
        f"{plan.log_path}",
        file=out,
        flush=True,
    )
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            status = worker.poll()
            if status is not None:
                print(
                    f"replay {plan.version}: the worker stopped with status {status}; its "
                    f"log: {plan.log_path}",
                    file=out,
                    flush=True,
                )
                return status or 1
            if report.see(time.monotonic(), look()) and plan.until_caught_up:
                break
            _sleep(plan.interval_s, stopping)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _stop(worker)
    return 0


def _sleep(seconds: float, stopping: list[int]) -> None:
    deadline = time.monotonic() + seconds
    while not stopping and time.monotonic() < deadline:
        time.sleep(0.1)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
