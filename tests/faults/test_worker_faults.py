"""Fault cases 1, 2, 3 and 6: workers killed, stopped, joining and leaving, hanging."""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.conftest import CaseFactory, Scale
from tests.harness.case import FaultCase
from tests.harness.topics import group_members
from tests.harness.workers import SESSION_TIMEOUT_S, WorkerProcess

DETECT_S = 30.0  # a hang is noticed within this


def _serving(case: FaultCase, count: int, timeout_s: float = 60) -> list[WorkerProcess]:
    """Until `count` workers (restarted ones too) serve /metrics."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = list(case.workers.running)
        if len(running) >= count and all(w.metrics() is not None for w in running):
            return running
        time.sleep(0.2)
    raise AssertionError(f"{count} workers not serving in {timeout_s:.0f} s")


@pytest.mark.secure_smoke
async def test_01_a_worker_killed_mid_batch_loses_and_repeats_nothing(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    case = new_case("1 worker SIGKILL mid-batch", seed)
    case.detect = False  # the test kills it: nothing to detect
    case.make_load()
    case.send(scale.per_second)
    case.workers.start()
    kills = int(scale.pick(2, 5))
    for share in sorted(case.random_share(0.1, 0.8) for _ in range(kills)):
        case.wait_scored(share)
        [worker] = _serving(case, 1)
        with case.fault("SIGKILL"):
            case.workers.kill(worker)  # the supervisor starts another at once
    case.settle()
    case.expect_no_unasked_exit()
    case.expect_recovery()
    await case.verify()


async def test_02_a_worker_stopped_with_sigterm_leaves_nothing_to_redo(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    case = new_case("2 worker SIGTERM", seed)
    case.detect = False
    case.make_load()
    case.send(scale.per_second)
    first = case.workers.start()
    case.wait_scored(case.random_share())
    with case.fault("SIGTERM, then a new worker"):
        code = case.workers.stop(first)
        second = case.workers.start()
    case.settle()
    case.expect.expect(code == 0, f"the stopped worker exited {code}, not 0")
    replayed = case.monitor.counted("streamproc_feature_events_total", "outcome").get("replayed")
    case.expect.expect(
        not replayed, f"{replayed} clean orders re-delivered to {second.name} after a graceful stop"
    )
    case.expect_no_unasked_exit()
    case.expect_recovery()
    await case.verify()


async def test_03_workers_joining_and_leaving_under_load(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    case = new_case("3 rebalance: workers join and leave", seed)
    case.detect = False
    case.make_load()
    case.workers.start_all(2)
    cycles = int(scale.pick(3, 20))
    # traffic through all the cycles (a join and a leave take some 8 s together)
    case.send(min(scale.per_second, case.events / (cycles * 8)))
    for _ in range(cycles):
        with case.fault("a worker joins, another leaves (2 stay)"):
            case.workers.start()
            time.sleep(case.rng.uniform(0.5, 3.0))
            case.workers.stop(case.workers.running[0])
    case.settle()
    case.expect_no_unasked_exit()
    await case.verify()


@pytest.mark.parametrize("how", ["stage blocks", "SIGSTOP"])
async def test_06_a_hanging_worker_is_detected(
    new_case: CaseFactory, scale: Scale, seed: int, how: str
) -> None:
    case = new_case(f"6 hanging worker ({how})", seed)
    case.make_load()
    case.send(scale.per_second)
    case.workers.start_all(2 if how == "SIGSTOP" else 1)  # with SIGSTOP, one takes over
    case.wait_scored(case.random_share())
    if how == "stage blocks":
        _hang_in_redis(case)
    else:
        _hang_stopped(case)
    case.settle()
    detected = case.detect_s()
    case.expect.expect(
        detected is not None and detected <= DETECT_S,
        f"the hang was detected after {detected} s (at most {DETECT_S:.0f} s)",
    )
    case.expect_no_unasked_exit()
    await case.verify()


def _hang_in_redis(case: FaultCase) -> None:
    """Redis blackholed: every stage call waits on an answer that never comes. The fault
    lasts until the worker shows it noticed, or past the detection limit."""
    with case.fault("Redis blackholed (stages block)"):
        case.stack.redis_proxy.blackhole()
        start = time.monotonic()
        while time.monotonic() - start < DETECT_S + 1 and case.monitor.first_signal(start) is None:
            time.sleep(0.5)
        case.stack.redis_proxy.restore()


def _hang_stopped(case: FaultCase) -> None:
    """One of two workers SIGSTOPped: the group must notice (its session times out) and hand
    its partitions to the other; resumed later, it is a zombie that must do no harm."""
    stopped = case.workers.running[0]
    with case.fault("one of 2 workers SIGSTOPped"):
        start = time.monotonic()
        stopped.signal(signal.SIGSTOP)
        while time.monotonic() - start < DETECT_S + 1:
            if group_members(case.stack.bootstrap, case.group) < 2:  # noqa: PLR2004
                case.detected_at(time.monotonic())
                break
            time.sleep(0.5)
        time.sleep(SESSION_TIMEOUT_S / 2)  # the survivor works on its partitions meanwhile
        stopped.signal(signal.SIGCONT)
