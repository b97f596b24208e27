"""Fault cases 4, 5 and 12: the broker killed, the broker frozen, input deleted by retention
before it was read."""

from __future__ import annotations

import re
import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from tests.faults.conftest import CaseFactory, Scale
from tests.harness.case import FaultCase
from tests.harness.oracles import Expected
from tests.harness.topics import committed

_OFFSET_RESET = re.compile(r"offset|retention|out of range", re.IGNORECASE)
LOUD_WITHIN_S = 30.0


async def test_04_the_broker_killed_and_restarted(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    case = new_case("4 broker SIGKILL, restarted", seed)
    case.make_load()
    case.send(scale.per_second)
    case.workers.start()
    case.wait_scored(case.random_share())
    down_s = case.rng.uniform(5, scale.pick(10, 30))
    with case.fault(f"broker SIGKILL, restarted after {down_s:.0f} s"):
        case.stack.broker.restart(down_s=down_s)
    case.settle()
    case.expect_no_unasked_exit()
    case.expect_recovery()
    await case.verify()


async def test_05_the_broker_stopped(new_case: CaseFactory, scale: Scale, seed: int) -> None:
    case = new_case("5 broker SIGSTOP", seed)
    case.make_load()
    case.send(scale.per_second)
    case.workers.start()
    case.wait_scored(case.random_share())
    stopped_s = scale.pick(15, 30)
    with case.fault(f"broker SIGSTOP {stopped_s:.0f} s"):
        case.stack.broker.pause()
        time.sleep(stopped_s)
        case.stack.broker.resume()
    case.settle()
    case.expect_no_unasked_exit()
    case.expect_recovery()
    await case.verify()


async def test_12_committed_offsets_older_than_retention(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    """The group is stopped; meanwhile records it has not read are deleted (as retention
    would) and more arrive. Restarted, the worker must say its offsets were reset, and go on
    from the log start: never idle silently, never skip what is still there."""
    case = new_case("12 committed offset older than retention", seed)
    load = case.make_load()
    first, second = load.records[: len(load.records) // 2], load.records[len(load.records) // 2 :]
    worker = case.workers.start()
    case.send(scale.per_second, first)
    case.settle()
    case.workers.stop(worker)
    case.send(None, second).wait(60)
    with case.fault("records deleted past the committed offsets, worker restarted"):
        case.expected = Expected(expired=_delete_unread(case))
        case.workers.start()
    case.settle()
    start = case.fault_windows()[0][0]
    loud = [s for s in case.monitor.signals if s.at >= start and _OFFSET_RESET.search(s.what)]
    case.expect.expect(
        bool(loud) and loud[0].at - start <= LOUD_WITHIN_S,
        f"no warning about the offsets reset within {LOUD_WITHIN_S:.0f} s of the restart "
        f"(signals: {[s.what for s in case.monitor.signals if s.at >= start][:3]})",
    )
    case.expect_no_unasked_exit()
    await case.verify()


def _delete_unread(case: FaultCase) -> frozenset[str]:
    """Delete, per raw partition, half of the records past the group's committed offset;
    returns the test ids deleted."""
    assert case.load is not None
    bootstrap, raw = case.stack.bootstrap, case.topics.raw
    at = committed(bootstrap, case.group, raw)
    unread: dict[int, list[tuple[int, str]]] = {}
    for test_id, (partition, offset) in case.load.positions.items():
        if offset >= at.get(partition, 0):
            unread.setdefault(partition, []).append((offset, test_id))
    cuts = {p: sorted(found)[len(found) // 2][0] for p, found in unread.items() if found}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_records([TopicPartition(raw, p, o) for p, o in cuts.items()])
    for future in futures.values():
        future.result(30)
    deleted = {t for p, found in unread.items() for o, t in found if o < cuts.get(p, 0)}
    case.note(f"{len(deleted)} unread records deleted")
    return frozenset(deleted)
