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

from streamproc.adapters.kafka.admin import committed_offsets, holds_data, watermarks
from streamproc.config.kafka import KafkaConnection

# The replay worker's settings: whole fetches, big batches, few commits; no latency target.
REPLAY_WORKER_SETTINGS = {
    "STREAMPROC_BATCH_SIZE": "5000",
    "STREAMPROC_FETCH_WAIT_MS": "200",
    "STREAMPROC_FETCH_MIN_BYTES": "4000000",
    "STREAMPROC_COMMIT_INTERVAL_S": "1",
    "STREAMPROC_PRODUCE_LINGER_MS": "50",
    # partitions in step: otherwise labels fall due before their orders are scored, and
    # two replays learn them at different moments (adapters/kafka/alignment.py)
    "STREAMPROC_ALIGN_PARTITIONS_MS": "10000",
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
    until_caught_up: bool = False


@dataclass(frozen=True, slots=True)
class Position:
    """Where the group stands on its topics: records done since their first kept, left to
    their ends, and whether it has caught up."""

    done: int
    left: int
    caught_up: bool = False


@dataclass(frozen=True, slots=True)
class GroupProgress:
    """Where a consumer group is on one topic, per partition (its committed offset, or the
    first kept record's), and the topic's ends now."""

    at: Mapping[int, int]
    ends: Mapping[int, int]
    done: int  # records read since the first kept
    left: int  # records to the ends
    started: bool  # the group committed something on the topic


def group_progress(kafka: KafkaConnection, group: str, topic: str) -> GroupProgress:
    committed = committed_offsets(kafka, group, topic)
    marks = watermarks(kafka, topic)
    at = {p: max(committed.get(p, low), low) for p, (low, _) in marks.items()}
    return GroupProgress(
        at,
        {p: high for p, (_, high) in marks.items()},
        sum(at[p] - low for p, (low, _) in marks.items()),
        sum(max(high - at[p], 0) for p, (_, high) in marks.items()),
        bool(committed),
    )


class CatchUp:
    """A replay has caught up once it has read the raw topic to where its end was when the
    replay started, and then its scored topic to where that one's end was once the raw one
    was read (the records the history gave it). A transaction's commit marker at a
    partition's end counts as read: no reader is positioned after it."""

    def __init__(self, kafka: KafkaConnection, group: str, topics: Sequence[str]) -> None:
        self._kafka = kafka
        self._group = group
        self._topics = topics
        self._ends: list[dict[int, int]] = []  # per topic, fixed when its turn comes
        self._markers: dict[tuple[str, int, int], bool] = {}

    def position(self) -> Position:
        done = left = 0
        reached = True
        for index, topic in enumerate(self._topics):
            progress = group_progress(self._kafka, self._group, topic)
            done += progress.done
            left += progress.left
            if reached and len(self._ends) == index:
                self._ends.append(dict(progress.ends))
            reached = reached and self._read_to(topic, progress.at, self._ends[index])
        return Position(done, left, reached)

    def _read_to(self, topic: str, at: Mapping[int, int], ends: Mapping[int, int]) -> bool:
        for partition, end in ends.items():
            position = at.get(partition, 0)
            if position >= end:
                continue
            if position < end - 1 or self._holds_data(topic, partition, end - 1):
                return False
        return True

    def _holds_data(self, topic: str, partition: int, offset: int) -> bool:
        key = (topic, partition, offset)
        if key not in self._markers:
            self._markers[key] = holds_data(self._kafka, topic, partition, offset)
        return self._markers[key]


class ProgressReport:
    """Turns successive positions into lines: records, share, rate, ETA; and caught up."""

    def __init__(self, version: str, out: TextIO) -> None:
        self._version = version
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
        if self.caught_up_at is None and at.caught_up:
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
    look = measure or CatchUp(plan.kafka, plan.group, plan.topics).position
    report = ProgressReport(plan.version, out)
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
