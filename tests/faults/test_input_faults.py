"""Fault cases 11 and 13: bad luck inside a stage, and input sent more than once."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamproc.adapters.kafka import dlq
from tests.faults.conftest import CaseFactory, Scale
from tests.faults.injected_worker import CLEAN, FEATURES, doomed, injected
from tests.harness.case import FaultCase
from tests.harness.load import ID_HEADER
from tests.harness.oracles import Expected
from tests.harness.topics import Record, read_between, stable_ends

INJECTED_MODULE = "tests.faults.injected_worker"


@dataclass
class DeadLetters:
    """Every dead letter of an injected failure carries the KIP-1034 headers, naming the
    exception, the source topic and the record's own partition and offset."""

    name = "dead letters"
    failed: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return self.failed[:5] + (
            [f"... {len(self.failed)} in all"] if len(self.failed) > 5 else []
        )


async def test_11_an_exception_in_a_stage_dead_letters_the_event(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    case = new_case("11 stage exception for 1% of events", seed, module=INJECTED_MODULE)
    load = case.make_load()
    raw_doomed = {r.test_id for r in load.records if doomed(r.event_id, CLEAN)}
    scored_doomed = {
        r.test_id
        for r in load.records
        if r.kind == "order" and r.test_id not in raw_doomed and doomed(r.event_id, FEATURES)
    }
    case.expected = Expected(raw_dlq=frozenset(raw_doomed), clean_dlq=frozenset(scored_doomed))
    case.detect = False
    case.send(scale.per_second)
    case.workers.start()
    case.note(f"{len(raw_doomed)} raw and {len(scored_doomed)} clean orders raise in a stage")
    case.settle()
    letters = DeadLetters()
    for topic in (case.topics.raw_dlq, case.topics.clean_dlq):
        found = read_between(
            case.stack.bootstrap,
            topic,
            case.starts[topic],
            stable_ends(case.stack.bootstrap, topic),
        )
        for records in found.values():
            for record in records:
                test_id = (record.header(ID_HEADER) or b"").decode()
                if test_id not in raw_doomed | scored_doomed:
                    continue
                letters.failed += _letter_problems(record, test_id, test_id in raw_doomed, case)
    with injected():  # the oracles' offline run fails where the worker did
        await case.verify(letters)


async def test_13_duplicates_and_retried_forms_are_dropped_exactly_once(
    new_case: CaseFactory, scale: Scale, seed: int
) -> None:
    case = new_case("13 duplicate input and retried forms", seed)
    load = case.make_load(retry_rate=0.2, resubmission_rate=0.2)
    kinds = load.kinds()
    case.detect = False
    case.note(f"{kinds['retry']} retries and {kinds['resubmission']} resubmitted forms")
    case.send(scale.per_second)
    case.workers.start()
    case.settle()
    counted = case.monitor.counted("streamproc_duplicates_total", "kind")
    case.expect.expect(
        counted == {"retry": kinds["retry"], "resubmission": kinds["resubmission"]},
        f"duplicates counted {counted}, the load holds {kinds['retry']} retries and "
        f"{kinds['resubmission']} resubmissions",
    )
    await case.verify()


def _letter_problems(record: Record, test_id: str, raw: bool, case: FaultCase) -> list[str]:
    """What a dead letter of an injected failure lacks: the exception, the reason, the source
    topic, partition and offset (the raw record's own, where the load knows it), a trace."""
    assert case.load is not None
    want = {
        dlq.EXCEPTION: f"{INJECTED_MODULE}.InjectedFault".encode(),
        dlq.REASON: b"internal_error",
        dlq.TOPIC: (case.topics.raw if raw else case.topics.clean).encode(),
    }
    if raw:
        partition, offset = case.load.positions[test_id]
        want[dlq.PARTITION], want[dlq.OFFSET] = str(partition).encode(), str(offset).encode()
    got = {name: record.header(name) for name in want}
    wrong = [
        f"{test_id}: {name} is {got[name]!r}, not {want[name]!r}"
        for name in want
        if got[name] != want[name]
    ]
    if not record.header(dlq.STACKTRACE) or record.header(dlq.OFFSET) is None:
        wrong.append(f"{test_id}: no stack trace or offset")
    return wrong
