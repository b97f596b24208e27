"""The four oracles a fault case is judged by, each a function returning a report whose
`problems()` lists what is wrong (nothing: the case passed that oracle).

- output set: every raw record of the load is in exactly the place its truth says (clean,
  duplicate audit or DLQ), every clean order has one prediction; nothing lost, nothing twice,
  per-key order kept; read back with isolation.level=read_committed.
- state: the Redis features equal, byte for byte but the wall clock, what the same feature
  step computes offline with in-memory stores from the clean topic cut at the group's
  committed offsets; the unit-switch counts equal the clean stage's offline count of the raw
  records cut at the committed raw offsets.
- progress: the offsets the Redis guards applied (features' `o|<partition>` marks, the
  unit-switch guard) never moved back while one Redis server ran, and at quiescence are those
  the committed offsets imply.
- accounting: in every scrape of every worker's /metrics, consumed = outputs + dead letters
  per source topic.

The comparisons are pure functions (tests/unit/test_fault_oracles.py holds them to planted
faults); the oracle functions read Kafka and Redis and call them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis
from prometheus_client.parser import text_string_to_metric_families

from streamproc.adapters.kafka.dlq import dlq_topic
from streamproc.adapters.memory import (
    InMemoryFeatureStore,
    InMemorySeenStore,
    InMemoryUnitStatsStore,
)
from streamproc.config.pipeline import PipelineSpec
from streamproc.core.features.stage import FeatureStage
from streamproc.core.unitswitch import UnitStatsUpdate
from streamproc.ports import Codec
from streamproc.records import Envelope
from streamproc.stages.clean import CleanStage
from streamproc.stages.feature_step import FeatureStep
from tests.harness.load import ID_HEADER, Load, LoadRecord
from tests.harness.topics import (
    Offsets,
    Record,
    committed,
    consumed_ends,
    read_between,
    stable_ends,
)

SAMPLES = 5  # examples quoted per kind of problem
_BATCH = 500
WALL_CLOCK_FIELDS = frozenset({"w"})  # the time of a write: the only field allowed to differ
_UNIT_SEP = "\x1f"  # how adapters/redis/units.py joins a count's field name


class Report(Protocol):
    """What every oracle returns."""

    name: str

    def problems(self) -> list[str]: ...


def assert_reports(*reports: Report) -> None:
    """One AssertionError listing every problem of every report."""
    problems = [f"{report.name}: {problem}" for report in reports for problem in report.problems()]
    assert not problems, "\n".join(problems)


def _quote(items: Iterable[object]) -> str:
    listed = list(items)
    more = f" (+{len(listed) - SAMPLES} more)" if len(listed) > SAMPLES else ""
    return ", ".join(str(item) for item in listed[:SAMPLES]) + more


@dataclass(frozen=True, slots=True)
class Topics:
    """The pipeline's topics the oracles read."""

    raw: str
    clean: str
    duplicates: str
    predictions: str

    @classmethod
    def of(cls, spec: PipelineSpec) -> Topics:
        assert spec.models is not None, "the fault cases run the reference pipeline, with models"
        return cls(
            spec.source.topic, spec.sink.topic, spec.duplicates.topic, spec.models.predictions.topic
        )

    @property
    def raw_dlq(self) -> str:
        return dlq_topic(self.raw)

    @property
    def clean_dlq(self) -> str:
        return dlq_topic(self.clean)

    def outputs(self) -> tuple[str, ...]:
        """What the workers write: the output set's topics."""
        return (self.clean, self.duplicates, self.predictions, self.raw_dlq, self.clean_dlq)

    def all(self) -> tuple[str, ...]:
        return (self.raw, *self.outputs())


# --- output set ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outputs:
    """What the workers wrote, by the load's test ids (event ids for predictions, which carry
    no headers), in topic order."""

    clean: Mapping[int, Sequence[str]]  # clean partition -> test ids in offset order
    duplicates: Sequence[str]
    raw_dlq: Sequence[str]
    clean_dlq: Sequence[str]
    predictions: Sequence[str]  # event ids
    unknown: int = 0  # records in the case's range that are not of its load


@dataclass(frozen=True, slots=True)
class Expected:
    """Where records go, when not where their truth says: those a fault sent to a DLQ on
    purpose, and those retention deleted before they were read."""

    raw_dlq: frozenset[str] = frozenset()  # test ids the clean stage must dead-letter
    clean_dlq: frozenset[str] = frozenset()  # test ids whose clean order must be dead-lettered
    expired: frozenset[str] = frozenset()
    # duplicates whose original Redis may have forgotten (it lost its state after the original
    # was in the log): they may come out clean, their event scored again for a retry
    forgotten: frozenset[str] = frozenset()


_DESTINATION = {"order": "clean", "retry": "duplicates", "resubmission": "duplicates"}


@dataclass
class OutputReport:
    """Lost, repeated, misrouted and reordered records."""

    name = "output set"
    inputs: int
    lost: list[str] = field(default_factory=list)  # test ids found nowhere
    unscored: list[str] = field(default_factory=list)  # clean orders without a prediction
    repeated: dict[str, int] = field(default_factory=dict)  # output -> copies beyond the first
    misrouted: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    expired: int = 0
    unknown: int = 0

    @property
    def repeats(self) -> int:
        return sum(self.repeated.values())

    def problems(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} of {self.inputs} records lost: {_quote(self.lost)}")
        if self.unscored:
            found.append(f"{len(self.unscored)} clean orders unscored: {_quote(self.unscored)}")
        if self.repeats:
            found.append(f"{self.repeats} repeated records: {dict(self.repeated)}")
        if self.misrouted:
            found.append(f"{len(self.misrouted)} misrouted: {_quote(self.misrouted)}")
        if self.out_of_order:
            found.append(f"{len(self.out_of_order)} keys out of order: {_quote(self.out_of_order)}")
        if self.unknown:
            found.append(f"{self.unknown} records in the case's range not of its load")
        return found


def compare_outputs(
    records: Sequence[LoadRecord], outputs: Outputs, expected: Expected = Expected()
) -> OutputReport:
    """Lost = input - outputs - DLQ - dropped duplicates; repeats by identity per output."""
    load = {record.test_id: record for record in records}
    clean = [test_id for ids in outputs.clean.values() for test_id in ids]
    places: dict[str, set[str]] = defaultdict(set)
    for place, ids in (
        ("clean", clean),
        ("duplicates", outputs.duplicates),
        ("raw_dlq", outputs.raw_dlq),
    ):
        for test_id in ids:
            places[test_id].add(place)
    report = OutputReport(len(records), expired=len(expected.expired), unknown=outputs.unknown)
    wants = _destinations(load, expected)
    for test_id, record in load.items():
        want = wants[test_id]
        got = places.get(test_id, set())
        if not got and test_id not in expected.expired:
            report.lost.append(test_id)
        elif got and got != {want} and not (test_id in expected.forgotten and got == {"clean"}):
            report.misrouted.append(f"{test_id} ({record.kind}): {sorted(got)}, not {want}")
    report.unscored = _unscored(load, clean, outputs, expected)
    passed_again = {i for i in expected.forgotten if places.get(i) == {"clean"}}
    report.repeated = {
        name: repeats
        for name, identities in (
            ("clean", [load[i].event_id for i in clean if i in load and i not in passed_again]),
            ("predictions", _without_rescored(outputs.predictions, load, passed_again)),
            ("duplicates", outputs.duplicates),
            ("raw_dlq", outputs.raw_dlq),
            ("clean_dlq", outputs.clean_dlq),
        )
        if (repeats := len(identities) - len(set(identities)))
    }
    report.out_of_order = _out_of_order(load, outputs.clean)
    return report


def _destinations(load: Mapping[str, LoadRecord], expected: Expected) -> dict[str, str]:
    """Where each record must end: its truth's place, or the DLQ a fault sent it to; and the
    first surviving copy of an order that never reached the dedupe step (dead-lettered by
    the clean stage, or deleted by retention before it was read) is that form's first
    sighting: it comes out clean, and only the copies after it are duplicates."""
    gone = expected.expired | expected.raw_dlq
    gone_originals = {
        r.event_id for test_id, r in load.items() if r.kind == "order" and test_id in gone
    }
    wants, sighted = {}, set()
    for test_id, record in load.items():  # in sending order: a key's copies in log order
        want = (
            "raw_dlq" if test_id in expected.raw_dlq else _DESTINATION.get(record.kind, "raw_dlq")
        )
        form = record.duplicate_of
        if want == "duplicates" and form in gone_originals and test_id not in gone:
            if form not in sighted:
                want = "clean"
            sighted.add(form)
        wants[test_id] = want
    return wants


def _without_rescored(
    predictions: Sequence[str], load: Mapping[str, LoadRecord], passed_again: Iterable[str]
) -> list[str]:
    """The predictions but one per forgotten retry that came out clean: its event, scored
    before Redis lost the state, was rightly scored again."""
    left = list(predictions)
    for test_id in passed_again:
        record = load[test_id]
        if record.kind == "retry" and record.event_id in left:
            left.remove(record.event_id)
    return left


def _unscored(
    load: Mapping[str, LoadRecord], clean: Sequence[str], outputs: Outputs, expected: Expected
) -> list[str]:
    """Clean orders with neither a prediction nor a dead letter of the feature step; those
    it had to dead-letter must have no prediction."""
    scored, dead = set(outputs.predictions), set(outputs.clean_dlq)
    missing = []
    for test_id in dict.fromkeys(clean):
        event_id = load[test_id].event_id if test_id in load else None
        if test_id in expected.clean_dlq and (event_id in scored or test_id not in dead):
            missing.append(f"{test_id}: to be dead-lettered, not scored")
        elif event_id not in scored and test_id not in dead:
            missing.append(test_id)
    return missing


def _out_of_order(load: Mapping[str, LoadRecord], clean: Mapping[int, Sequence[str]]) -> list[str]:
    """Keys whose clean orders (first copies, per partition) do not follow the load's order."""
    wrong = []
    for ids in clean.values():
        newest: dict[bytes, int] = {}
        for test_id in dict.fromkeys(ids):
            record = load.get(test_id)
            if record is None:
                continue
            if record.seq < newest.get(record.key, -1):
                wrong.append(f"{record.key!r}: seq {record.seq} after {newest[record.key]}")
            newest[record.key] = max(record.seq, newest.get(record.key, -1))
    return wrong


def read_outputs(
    found: Mapping[str, Mapping[int, Sequence[Record]]], topics: Topics, load: Load, codec: Codec
) -> Outputs:
    """The records read back (topic -> partition -> records) as the Outputs of `load`."""
    headed = (topics.clean, topics.duplicates, topics.raw_dlq, topics.clean_dlq)
    mine, others = _test_ids(load.run, {topic: found[topic] for topic in headed})
    event_ids = {record.event_id for record in load.records}
    predictions = [
        codec.decode(record.value)["event_id"]
        for records in found[topics.predictions].values()
        for record in records
    ]
    scored = [event_id for event_id in predictions if event_id in event_ids]

    def flat(topic: str) -> list[str]:
        return [test_id for ids in mine[topic].values() for test_id in ids]

    return Outputs(
        mine[topics.clean],
        flat(topics.duplicates),
        flat(topics.raw_dlq),
        flat(topics.clean_dlq),
        scored,
        others + len(predictions) - len(scored),
    )


def _test_ids(
    run: bytes, found: Mapping[str, Mapping[int, Sequence[Record]]]
) -> tuple[dict[str, dict[int, list[str]]], int]:
    """Per topic and partition the test ids of `run`'s records, and how many were not."""
    prefix = run + b"/"
    mine: dict[str, dict[int, list[str]]] = {}
    others = 0
    for topic, partitions in found.items():
        mine[topic] = {}
        for partition, records in partitions.items():
            ids = [r.header(ID_HEADER) or b"" for r in records]
            mine[topic][partition] = [i.decode() for i in ids if i.startswith(prefix)]
            others += len(ids) - len(mine[topic][partition])
    return mine, others


# --- state -----------------------------------------------------------------------------


@dataclass
class Offline:
    """What the stages compute from the cut input with in-memory stores."""

    features: dict[str, dict[str, str]]  # hash key (without namespace) -> fields
    unit_counts: dict[str, int]  # field as Redis names it -> count
    unit_guard: dict[int, int]  # raw partition -> newest offset counted

    def marks(self) -> dict[int, int]:
        """Per raw partition, the newest offset the feature hashes applied."""
        return _highest_marks(self.features.values())


class _GuardWatch(InMemoryUnitStatsStore):
    """The in-memory unit-switch store, noting per partition the newest offset it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.newest: dict[int, int] = {}

    async def send(self, update: UnitStatsUpdate) -> None:
        for sighting in update.sightings:
            newest = self.newest.get(sighting.partition, -1)
            self.newest[sighting.partition] = max(newest, sighting.offset)
        await super().send(update)


async def recompute(
    spec: PipelineSpec,
    codec: Codec,
    pii_key: bytes,
    raw: Sequence[Envelope],
    clean: Mapping[int, Sequence[Record]],
) -> Offline:
    """The clean stage over `raw` (in order per partition) for the unit-switch counts, and
    the feature step over `clean` (per partition, in order) for the features."""
    units = _GuardWatch()
    stage = CleanStage(spec, codec, InMemorySeenStore(), units, pii_key)
    for partition in sorted({envelope.partition for envelope in raw}):
        mine = [envelope for envelope in raw if envelope.partition == partition]
        for start in range(0, len(mine), _BATCH):
            await stage.process(mine[start : start + _BATCH])
    stats = await units.exchange(UnitStatsUpdate())
    counts = {
        _UNIT_SEP.join((*group, str(bin_))): count
        for group, bins in stats.counts.items()
        for bin_, count in bins.items()
    }
    store = InMemoryFeatureStore()
    step = FeatureStep.of_clean_orders(spec, codec, FeatureStage(spec.features, store))
    for partition, records in sorted(clean.items()):
        envelopes = [
            Envelope(spec.sink.topic, partition, r.offset, r.key, r.value, r.headers)
            for r in records
        ]
        for start in range(0, len(envelopes), _BATCH):
            await step.process(envelopes[start : start + _BATCH], wall_ms=0)
    return Offline(store.hashes, counts, units.newest)


@dataclass
class StateReport:
    """Redis against the offline recomputation."""

    name = "state"
    keys: int
    missing: list[str] = field(default_factory=list)  # offline has it, Redis does not
    extra: list[str] = field(default_factory=list)  # Redis has it, offline does not
    differing: list[str] = field(default_factory=list)  # key: field online != offline
    rounding: list[str] = field(default_factory=list)  # differing past the 12th digit only
    unit_counts: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        listed = (self.missing, self.extra, self.differing, self.rounding, self.unit_counts)
        return sum(len(items) for items in listed)

    def problems(self) -> list[str]:
        found = []
        for what, listed in (
            (f"feature hashes missing in Redis (of {self.keys})", self.missing),
            ("feature hashes in Redis only", self.extra),
            ("feature fields differing (Redis != offline)", self.differing),
            (
                "feature fields differing past the 12th significant digit only (Redis != "
                "offline: a sum continued from its stored text, not from the unrounded value)",
                self.rounding,
            ),
            ("unit-switch counts differing (Redis != offline)", self.unit_counts),
        ):
            if listed:
                found.append(f"{len(listed)} {what}: {_quote(listed)}")
        return found


def compare_state(
    online: Mapping[str, Mapping[str, str]],
    online_counts: Mapping[str, int],
    offline: Offline,
) -> StateReport:
    """Equal, not approximately: every field's text but the wall clock's."""
    report = StateReport(len(offline.features))
    report.missing = sorted(set(offline.features) - set(online))
    report.extra = sorted(set(online) - set(offline.features))
    for key in sorted(set(online) & set(offline.features)):
        mine, theirs = online[key], offline.features[key]
        for name in sorted((set(mine) | set(theirs)) - WALL_CLOCK_FIELDS):
            got, want = mine.get(name), theirs.get(name)
            if got != want:
                close = _numbers_close(got, want)
                (report.rounding if close else report.differing).append(
                    f"{key} {name}: {got} != {want}"
                )
    for name in sorted(set(online_counts) | set(offline.unit_counts)):
        count, recount = online_counts.get(name, 0), offline.unit_counts.get(name, 0)
        if count != recount:
            report.unit_counts.append(f"{name.replace(_UNIT_SEP, '/')}: {count} != {recount}")
    return report


def _numbers_close(got: str | None, want: str | None) -> bool:
    """Whether two stored texts are the same numbers but for their last digits."""
    if got is None or want is None:
        return False
    mine, theirs = got.split("|"), want.split("|")
    try:
        pairs = [(float(a), float(b)) for a, b in zip(mine, theirs, strict=True)]
    except ValueError:
        return False
    return all(math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9) for a, b in pairs)


class RedisState:
    """The namespace's Redis state the oracles compare, read with a plain client."""

    def __init__(self, url: str, namespace: str, pipeline: str) -> None:
        self._client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
        self._features = f"{namespace}:features:"
        self._units = f"{namespace}:{pipeline}:{{units}}"

    def close(self) -> None:
        self._client.close()

    def run_id(self) -> str:
        return str(self._client.info("server")["run_id"])

    def degraded_marks(self) -> list[str]:
        """Why the namespace's state is marked degraded, if it is (adapters/redis/marker.py)."""
        keys = self._client.scan_iter(match="*:state:*:degraded")
        return [str(self._client.get(key) or "") for key in keys]

    def features(self) -> dict[str, dict[str, str]]:
        keys = list(self._client.scan_iter(f"{self._features}*", count=5_000))
        with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes = pipe.execute()
        return {
            key.removeprefix(self._features): value for key, value in zip(keys, hashes, strict=True)
        }

    def marks(self, partitions: Sequence[int]) -> dict[tuple[str, int], int]:
        """Every feature hash's offset mark per raw partition (one HMGET per hash)."""
        keys = list(self._client.scan_iter(f"{self._features}*", count=5_000))
        fields = [f"o|{p}" for p in partitions]
        with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, fields)
            replies = pipe.execute()
        return {
            (key, partition): int(value)
            for key, values in zip(keys, replies, strict=True)
            for partition, value in zip(partitions, values, strict=True)
            if value is not None
        }

    def unit_counts(self) -> dict[str, int]:
        return {
            str(name): int(value)
            for name, value in self._client.hgetall(f"{self._units}:counts").items()
        }

    def unit_guard(self) -> dict[int, int]:
        guard = self._client.hgetall(f"{self._units}:guard")
        return {int(partition): int(offset) for partition, offset in guard.items()}


def _highest_marks(hashes: Iterable[Mapping[str, str]]) -> dict[int, int]:
    marks: dict[int, int] = {}
    for fields in hashes:
        for name, value in fields.items():
            if name.startswith("o|"):
                partition = int(name[2:])
                marks[partition] = max(marks.get(partition, -1), int(value))
    return marks


# --- progress --------------------------------------------------------------------------


class MarkSampler:
    """Samples of the guards' offsets, taken during a case: none may move back while the
    same Redis server (run id) holds them. A server that restarted empty starts a new run."""

    def __init__(self) -> None:
        self.samples = 0
        self.runs: list[str] = []
        self.regressions: list[str] = []
        self._marks: dict[tuple[str, int], int] = {}
        self._guard: dict[int, int] = {}

    def observe(
        self, run_id: str, marks: Mapping[tuple[str, int], int], guard: Mapping[int, int]
    ) -> None:
        self.samples += 1
        if not self.runs or self.runs[-1] != run_id:
            self.runs.append(run_id)
            self._marks, self._guard = dict(marks), dict(guard)
            return
        for (key, partition), before in self._marks.items():
            now = marks.get((key, partition))
            if now is None or now < before:
                self.regressions.append(f"{key} o|{partition}: {before} -> {now}")
        for partition, before in self._guard.items():
            now = guard.get(partition)
            if now is None or now < before:
                self.regressions.append(f"unit guard {partition}: {before} -> {now}")
        self._marks, self._guard = dict(marks), dict(guard)


@dataclass
class ProgressReport:
    """Guards that moved back, and where they stand at quiescence against the commits."""

    name = "progress"
    samples: int
    regressions: list[str] = field(default_factory=list)
    unconsumed: list[str] = field(default_factory=list)  # committed short of the topic's end
    mismatched: list[str] = field(default_factory=list)  # a guard not where the cut puts it

    def problems(self) -> list[str]:
        found = []
        if not self.samples:
            found.append("no sample of the guards was taken during the case")
        for what, listed in (
            ("guard offsets moved back", self.regressions),
            ("partitions not consumed to their end", self.unconsumed),
            ("guards not at the committed offsets", self.mismatched),
        ):
            if listed:
                found.append(f"{len(listed)} {what}: {_quote(listed)}")
        return found


@dataclass(frozen=True, slots=True)
class Positions:
    """Where a topic stands at quiescence for the case's group."""

    topic: str
    committed: Offsets
    ends: Offsets  # last stable offsets

    def unconsumed(self) -> list[str]:
        return [
            f"{self.topic}[{p}] committed {self.committed.get(p)} of {end}"
            for p, end in sorted(self.ends.items())
            if self.committed.get(p, 0) < end
        ]


def compare_progress(
    sampler: MarkSampler,
    positions: Sequence[Positions],
    online: tuple[Mapping[int, int], Mapping[int, int]],
    offline: Offline,
) -> ProgressReport:
    """`online`: the highest feature mark and the unit guard per raw partition, at the end.
    Each must be what the input cut at the committed offsets gives (committed - 1 at most)."""
    report = ProgressReport(sampler.samples, list(sampler.regressions))
    report.unconsumed = [line for position in positions for line in position.unconsumed()]
    raw = positions[0].committed
    for what, got, want in (
        ("feature mark", online[0], offline.marks()),
        ("unit guard", online[1], offline.unit_guard),
    ):
        for partition in sorted(set(got) | set(want)):
            mark, cut = got.get(partition), want.get(partition)
            limit = raw.get(partition, 0) - 1
            if mark != cut or (mark is not None and mark > limit):
                report.mismatched.append(
                    f"{what} [{partition}] = {mark}, the cut says {cut} (committed - 1 = {limit})"
                )
    return report


# --- accounting ------------------------------------------------------------------------


def accounting_errors(exposition: str, topics: Topics) -> list[str]:
    """Per source topic in one scrape: consumed = outputs + dead letters (a duplicate's
    audit record is its output; every clean order is scored or dead-lettered)."""
    consumed: Counter[str] = Counter()
    produced: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    dropped = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "streamproc_records_consumed_total":
                consumed[sample.labels["topic"]] += int(sample.value)
            elif sample.name == "streamproc_records_produced_total":
                produced[sample.labels["topic"]] += int(sample.value)
            elif sample.name == "streamproc_dead_letters_total":
                dead[sample.labels["topic"]] += int(sample.value)
            elif sample.name == "streamproc_duplicates_total":
                dropped += sample.value
    errors = []
    for source, outputs in (
        (topics.raw, produced[topics.clean] + produced[topics.duplicates]),
        (topics.clean, produced[topics.predictions]),
    ):
        if consumed[source] != outputs + dead[source]:
            errors.append(
                f"{source}: consumed {consumed[source]} != outputs {outputs} + "
                f"dead letters {dead[source]}"
            )
    if dropped != produced[topics.duplicates]:
        errors.append(
            f"duplicates counted {dropped:.0f} != audit records {produced[topics.duplicates]}"
        )
    return errors


@dataclass
class AccountingReport:
    """Scrapes whose counts do not add up."""

    name = "accounting"
    scrapes: int
    errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = [] if self.scrapes else ["no scrape of /metrics was taken during the case"]
        if self.errors:
            found.append(f"{len(self.errors)} scrapes do not add up: {_quote(self.errors)}")
        return found


# --- the oracles, on a case's broker and Redis -----------------------------------------


@dataclass(frozen=True)
class CaseView:
    """What the oracles read a finished case from."""

    bootstrap: str
    redis: RedisState
    group: str
    spec: PipelineSpec
    codec: Codec
    pii_key: bytes
    load: Load
    starts: Mapping[str, Offsets]  # topic -> the case's first offsets
    expected: Expected = Expected()

    @property
    def topics(self) -> Topics:
        return Topics.of(self.spec)


@dataclass(frozen=True)
class Cut:
    """The input cut at the group's committed offsets, and what the stages make of it."""

    raw: Positions
    clean: Positions
    offline: Offline


def output_set(view: CaseView) -> OutputReport:
    topics = view.topics
    found = {
        topic: read_between(
            view.bootstrap, topic, view.starts[topic], stable_ends(view.bootstrap, topic)
        )
        for topic in topics.outputs()
    }
    outputs = read_outputs(found, topics, view.load, view.codec)
    return compare_outputs(view.load.records, outputs, view.expected)


async def cut_input(view: CaseView) -> Cut:
    topics = view.topics
    raw, clean = (
        Positions(topic, done, consumed_ends(view.bootstrap, topic, done))
        for topic in (topics.raw, topics.clean)
        for done in [committed(view.bootstrap, view.group, topic)]
    )
    envelopes = sorted(
        (
            Envelope(
                topics.raw,
                partition,
                offset,
                record.key,
                record.value,
                record.test_headers(view.load.run),
            )
            for record in view.load.records
            if record.test_id in view.load.positions and record.test_id not in view.expected.expired
            for partition, offset in [view.load.positions[record.test_id]]
            if offset < raw.committed.get(partition, 0)
        ),
        key=lambda envelope: (envelope.partition, envelope.offset),
    )
    cleaned = read_between(view.bootstrap, topics.clean, view.starts[topics.clean], clean.committed)
    offline = await recompute(view.spec, view.codec, view.pii_key, envelopes, cleaned)
    return Cut(raw, clean, offline)


def state(view: CaseView, cut: Cut) -> StateReport:
    return compare_state(view.redis.features(), view.redis.unit_counts(), cut.offline)


def progress(view: CaseView, cut: Cut, sampler: MarkSampler) -> ProgressReport:
    marks = _highest_marks(view.redis.features().values())
    return compare_progress(
        sampler, (cut.raw, cut.clean), (marks, view.redis.unit_guard()), cut.offline
    )


def accounting(scrapes: int, errors: Sequence[str]) -> AccountingReport:
    return AccountingReport(scrapes, list(errors))
