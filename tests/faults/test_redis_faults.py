"""Fault cases 7, 8, 9 and 10: Redis restarted empty, a reply lost after the server ran the
script, Redis out of reach for a long time, the script cache flushed."""

from __future__ import annotations

import time

import pytest
import redis

from tests.faults.conftest import CaseFactory, Scale
from tests.harness.case import FaultCase
from tests.harness.load import Load
from tests.harness.oracles import Expected
from tests.harness.topics import Offsets, stable_ends

DETECT_S = 10.0  # a Redis that came back empty is noticed at the next batch
RESUME_S = 5.0  # after Redis returns, output resumes within this (the limit)
MEMORY_GROWTH_MB = 200.0  # what a worker may add while its input waits (partitions paused)


async def test_07_redis_restarted_without_persistence(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    case = new_case("7 Redis restart, comes back empty", seed)
    case.make_load()
    case.send(scale.per_second)
    case.workers.start()
    case.wait_scored(case.random_share())
    with case.fault("Redis SIGKILL, restarted empty after 2 s"):
        case.stack.redis.restart(down_s=2)
    in_log = stable_ends(case.stack.bootstrap, case.topics.raw)
    case.settle()
    case.expected = Expected(forgotten=_forgettable(case.load, in_log))
    detected = case.detect_s()
    case.expect.expect(
        detected is not None and detected <= DETECT_S,
        f"the empty Redis was noticed after {detected} s (at most {DETECT_S:.0f} s)",
    )
    case.expect_no_unasked_exit()  # no crash loop
    await case.verify(state_lost=True)


async def test_08_a_redis_reply_lost_after_the_script_ran(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    """For one second every Redis call reaches the server, which runs it, and its reply is
    dropped; the connection dies 8 s later (a client with a shorter timeout gives up first).
    Whatever the worker retries must change nothing a second time: the guards see to it."""
    case = new_case("8 Redis reply lost after the script ran", seed)
    case.make_load()
    case.send(scale.per_second)
    case.workers.start()
    case.wait_scored(case.random_share())
    with case.fault("Redis replies swallowed for 1 s"):
        case.stack.redis_proxy.swallow_replies(hold_s=8)
        time.sleep(1)
        case.stack.redis_proxy.restore(drop_tainted=False)
    case.settle()
    case.expect_no_unasked_exit()
    await case.verify()


@pytest.mark.secure_smoke
async def test_09_redis_out_of_reach_for_long(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    """Redis unreachable (connections cut, new ones refused) while the load goes on: the
    worker waits with its partitions paused, its memory bounded, and resumes once it is
    back; Redis keeps its data meanwhile."""
    case = new_case("9 Redis down, back with its data", seed)
    case.make_load()
    case.send(scale.per_second)
    case.workers.start()
    case.wait_scored(case.random_share(0.1, 0.3))
    before = _rss(case)
    down_s = scale.pick(10, 60)
    with case.fault(f"Redis unreachable {down_s:.0f} s"):
        case.stack.redis_proxy.down()
        time.sleep(down_s)
        case.stack.redis_proxy.restore()
    case.settle()
    grown = max(w.peak_rss_mb for w in case.workers.all()) - before
    case.note(f"worker memory +{grown:.0f} MB")
    case.expect.expect(
        grown <= MEMORY_GROWTH_MB,
        f"worker memory grew {grown:.0f} MB while Redis was away (at most {MEMORY_GROWTH_MB:.0f})",
    )
    case.expect_recovery(RESUME_S)
    case.expect_no_unasked_exit()
    await case.verify()


async def test_10_script_flush_under_load(new_case: CaseFactory, scale: Scale, seed: int) -> None:
    case = new_case("10 SCRIPT FLUSH under load", seed)
    case.detect = False
    case.make_load()
    case.send(scale.per_second)
    case.workers.start()
    client = redis.Redis.from_url(case.stack.redis_url)
    try:
        for share in sorted(case.random_share(0.1, 0.9) for _ in range(int(scale.pick(3, 10)))):
            case.wait_scored(share)
            with case.fault("SCRIPT FLUSH"):
                client.script_flush()
    finally:
        client.close()
    case.settle()
    case.expect_no_unasked_exit()
    await case.verify()  # the output set's misrouted: no order dead-lettered for it


def _rss(case: FaultCase) -> float:
    return max((w.rss_mb() or 0.0) for w in case.workers.running)


def _forgettable(load: Load | None, in_log: Offsets) -> frozenset[str]:
    """The duplicates whose original was in the raw log when Redis came back empty: the
    dedupe key it left may be gone, so they may pass as new (the state is marked degraded)."""
    assert load is not None
    originals = {r.event_id: r.test_id for r in load.records if r.kind == "order"}

    def logged(test_id: str | None) -> bool:
        position = load.positions.get(test_id or "")
        return position is not None and position[1] < in_log.get(position[0], 0)

    return frozenset(
        record.test_id
        for record in load.records
        if record.duplicate_of and logged(originals.get(record.duplicate_of))
    )
