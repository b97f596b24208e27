"""One fault case from start to verdict: a consumer group and Redis namespace of its own that
start at the topics' ends, its workers (supervised), a seeded load, faults the test fires at
seeded points, then quiescence, the four oracles and the case's own expectations, recorded
as a row of the results table before they are asserted."""

from __future__ import annotations

import contextlib
import random
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import TopicPartition

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import start_group_at
from streamproc.config.kafka import KafkaConnection
from streamproc.config.pipeline import PipelineSpec
from tests.harness.cluster import CASE_PREFIX, FaultStack
from tests.harness.load import Load, LoadProducer, LoadRecord, shop_load
from tests.harness.monitor import CaseMonitor, OutputWatch
from tests.harness.oracles import (
    CaseView,
    Expected,
    OutputReport,
    Positions,
    RedisState,
    Report,
    StateReport,
    Topics,
    accounting,
    assert_reports,
    cut_input,
    output_set,
    progress,
    state,
)
from tests.harness.report import RESULTS, CaseResult
from tests.harness.topics import committed, consumed_ends, partitions, stable_ends
from tests.harness.workers import PII_KEY, WORKER_MODULE, Workers

SETTLE_BASE_S = 60.0  # quiescence may take this long, plus a second per SETTLE_RATE events
SETTLE_RATE = 200
_STABLE_ROUNDS = 2
RECOVER_S = 10.0  # the first new prediction after a restart or an outage (the limit)


@dataclass
class Expectations:
    """A case's own checks besides the oracles (no unasked exit, detected in time, ...)."""

    name = "expectations"
    failed: list[str] = field(default_factory=list)

    def expect(self, holds: bool, otherwise: str) -> None:
        if not holds:
            self.failed.append(otherwise)

    def problems(self) -> list[str]:
        return list(self.failed)


@dataclass(frozen=True)
class CaseSettings:
    """What every case of a session shares: the stack, the codec and pipeline, the scale."""

    stack: FaultStack
    serde: AvroSerde
    spec: PipelineSpec
    events: int
    folder: Path


class FaultCase:
    """A case: `load` and `send`, fire faults with `fault`, then `verify`."""

    def __init__(
        self,
        settings: CaseSettings,
        title: str,
        seed: int,
        overrides: Mapping[str, str] | None = None,
        module: str = WORKER_MODULE,
    ) -> None:
        self.title = title
        self.seed = seed
        self.events = settings.events
        self.stack = settings.stack
        self.rng = random.Random(f"{title}/{seed}")  # noqa: S311 - fault timing, not secrets
        self.expect = Expectations()
        self.expected = Expected()
        self._seen_at_end = 0  # predictions seen when the last fault ended
        self.detect = True  # whether detection time means something for this fault
        self._detected: float | None = None  # when the test saw detection itself
        self._settings = settings
        self._started = time.monotonic()
        self._notes: list[str] = []
        self._fired: dict[str, list[int]] = {}  # fault -> orders scored when each fired
        self._faults: list[tuple[float, float]] = []
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:24]
        self.group = f"{CASE_PREFIX}-{slug}-{seed}-{uuid.uuid4().hex[:6]}"
        self.topics = Topics.of(settings.spec)
        bootstrap = self.stack.bootstrap
        self.starts = {topic: stable_ends(bootstrap, topic) for topic in self.topics.all()}
        self._start_group()
        self.redis = RedisState(self.stack.redis_url, self.group, settings.spec.name)
        with contextlib.ExitStack() as undo:  # a case that fails to start leaves no thread
            undo.callback(self.redis.close)
            self.workers = Workers(
                self.stack, self.group, settings.folder / self.group, overrides, module
            )
            undo.callback(self.workers.close)
            raw_partitions = partitions(bootstrap, self.topics.raw)
            self.monitor = CaseMonitor(self.workers, self.redis, raw_partitions, self.topics)
            undo.callback(self.monitor.stop)
            self.monitor.start()
            predictions = self.topics.predictions
            self.watch = OutputWatch(
                bootstrap, predictions, self.starts[predictions], settings.serde
            )
            undo.pop_all()
        self.load: Load | None = None
        self._producers: list[LoadProducer] = []

    def _start_group(self) -> None:
        """The group starts at the ends of what it reads: this case's records only."""
        spec = self._settings.spec
        assert spec.models is not None
        labels = spec.models.labels.topic
        offsets = [
            TopicPartition(topic, partition, offset)
            for topic in (self.topics.raw, self.topics.clean, labels)
            for partition, offset in stable_ends(self.stack.bootstrap, topic).items()
        ]
        start_group_at(KafkaConnection(self.stack.bootstrap), self.group, offsets)

    # --- the run ------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def note(self, text: str) -> None:
        self._notes.append(text)

    def make_load(self, events: int | None = None, **rates: float) -> Load:
        serde = self._settings.serde
        self.load = shop_load(serde, self.group, self.seed, events or self.events, **rates)
        return self.load

    def send(
        self, per_second: float | None, records: Sequence[LoadRecord] | None = None
    ) -> LoadProducer:
        assert self.load is not None, "make_load first"
        producer = LoadProducer(self.stack.bootstrap, self.load, per_second, records).start()
        self._producers.append(producer)
        return producer

    def orders(self) -> int:
        """How many predictions the load should lead to."""
        assert self.load is not None
        return self.load.kinds()["order"]

    def wait_scored(self, share: float) -> None:
        """Until `share` of the load's orders are scored (faults fire mid-stream)."""
        wanted = int(share * self.orders())
        timeout_s = SETTLE_BASE_S + self.events / SETTLE_RATE
        deadline = time.monotonic() + timeout_s
        while self.watch.seen() < wanted:
            assert time.monotonic() < deadline, (
                f"{self.watch.seen()} of {wanted} orders scored in {timeout_s:.0f} s"
            )
            time.sleep(0.1)

    def random_share(self, low: float = 0.2, high: float = 0.6) -> float:
        return self.rng.uniform(low, high)

    @contextlib.contextmanager
    def fault(self, what: str) -> Iterator[None]:
        """Around a fault: its window is timed (detection from its start, recovery from its
        end) and it is named in the results table."""
        start = time.monotonic()
        if what not in self._fired:
            self._fired[what] = []
            self._notes.append(what)  # its place among the notes; said in full by happened()
        self._fired[what].append(self.watch.seen())
        try:
            yield
        finally:
            self._faults.append((start, time.monotonic()))
            self._seen_at_end = self.watch.seen()

    def settle(self, timeout_s: float | None = None) -> bool:
        """Every load acked, then until the group has committed both input topics to their
        ends and the predictions stopped growing; False if that did not come in time."""
        limit = timeout_s or SETTLE_BASE_S + self.events / SETTLE_RATE
        deadline = time.monotonic() + limit
        for producer in self._producers:
            producer.wait(max(1.0, deadline - time.monotonic()))
        stable, seen = 0, -1
        while time.monotonic() < deadline:
            behind = [line for position in self._positions() for line in position.unconsumed()]
            now = self.watch.seen()
            stable = stable + 1 if not behind and now == seen else 0
            if stable >= _STABLE_ROUNDS:
                return True
            seen = now
            time.sleep(1.0)
        self.note(f"not quiescent in {limit:.0f} s")
        return False

    def _positions(self) -> list[Positions]:
        bootstrap = self.stack.bootstrap
        found = []
        for topic in (self.topics.raw, self.topics.clean):
            done = committed(bootstrap, self.group, topic)
            found.append(Positions(topic, done, consumed_ends(bootstrap, topic, done)))
        return found

    # --- the verdict --------------------------------------------------------------------

    async def verify(self, *extra: Report, state_lost: bool = False) -> CaseResult:
        """Stop the workers, run the oracles, record the row, assert. `state_lost`: Redis
        lost the state on purpose; instead of the state and progress oracles, the loss must
        be marked (the workers report the state degraded until it is rebuilt)."""
        self.monitor.stop()
        self.watch.stop()
        for worker in list(self.workers.running):
            self.workers.stop(worker)
        view = self._view()
        try:
            output = output_set(view)
            cut = await cut_input(view)
            state_report = state(view, cut)
            kept: list[Report] = (
                [DegradedMark(self.redis.degraded_marks())]
                if state_lost
                else [state_report, progress(view, cut, self.monitor.sampler)]
            )
            reports: list[Report] = [
                output,
                *kept,
                accounting(self.monitor.scrapes, self.monitor.accounting),
                self.expect,
                *extra,
            ]
        except Exception as exc:
            RESULTS.append(self._result(None, None, [], f"the oracles failed: {exc!r}"))
            raise
        result = self._result(output, state_report, reports)
        RESULTS.append(result)
        assert_reports(*reports)
        return result

    def _view(self) -> CaseView:
        assert self.load is not None
        return CaseView(
            self.stack.bootstrap,
            self.redis,
            self.group,
            self._settings.spec,
            self._settings.serde,
            PII_KEY.encode(),
            self.load,
            self.starts,
            self.expected,
        )

    def fault_windows(self) -> list[tuple[float, float]]:
        """(start, end) of each fault, time.monotonic()."""
        return list(self._faults)

    def expect_recovery(self, within_s: float = RECOVER_S) -> None:
        """A new prediction within `within_s` of the (last) fault's end."""
        recovered = self.recover_s()
        if recovered is None and self._faults and self.watch.seen() == self._seen_at_end:
            # nothing came after the fault: nothing was left to score (the output set
            # oracle says whether anything is missing)
            return
        self.expect.expect(
            recovered is not None and recovered <= within_s,
            f"first new prediction {recovered} s after the fault ended (at most {within_s:.0f} s)",
        )

    def expect_no_unasked_exit(self) -> None:
        """The workers rode the fault through: none exited unless the test stopped it."""
        for exit_ in self.workers.unasked_exits():
            lines = [line for line in exit_.log_tail.splitlines() if line.strip()]
            last = lines[-1][-300:] if lines else "(nothing)"
            self.expect.failed.append(f"{exit_.worker} exited {exit_.code} unasked: {last}")

    def happened(self) -> str:
        """The notes, each fault once with how often it fired and at how many scored."""
        parts = []
        for note in self._notes:
            fired = self._fired.get(note)
            if fired is None:
                parts.append(note)
            elif len(fired) == 1:
                parts.append(f"{note} at {fired[0]} scored")
            else:
                parts.append(f"{note} ×{len(fired)} (at {fired[0]}…{fired[-1]} scored)")
        return "; ".join(parts)

    def detected_at(self, moment: float) -> None:
        """The test saw the fault detected (by the group, say) at `moment`."""
        self._detected = moment

    def detect_s(self) -> float | None:
        """From the first fault's start to the first sign a worker gave of it."""
        if not self._faults or not self.detect:
            return None
        start = self._faults[0][0]
        if self._detected is not None:
            return self._detected - start
        signal = self.monitor.first_signal(start)
        return None if signal is None else signal.at - start

    def recover_s(self) -> float | None:
        return self.watch.first_new_after(self._faults[-1][1]) if self._faults else None

    def _result(
        self,
        output: OutputReport | None,
        state_report: StateReport | None,
        reports: Sequence[Report],
        error: str | None = None,
    ) -> CaseResult:
        exits = self.workers.unasked_exits()
        happened = self.happened()
        if exits:
            codes = ", ".join(str(e.code) for e in exits)
            happened += f"; {len(exits)} unasked worker exits ({codes})"
        problems = [
            f"{report.name}: {problem}" for report in reports for problem in report.problems()
        ]
        return CaseResult(
            self.title,
            self.seed,
            len(self.load.records) if self.load else 0,
            happened,
            len(output.lost) if output else -1,
            output.repeats if output else -1,
            state_report.errors if state_report else -1,
            self.detect_s(),
            self.recover_s(),
            max((w.peak_rss_mb for w in self.workers.all()), default=0.0),
            self.elapsed(),
            [*problems, *([error] if error else [])],
        )

    def close(self) -> None:
        """Whatever the outcome: servers resumed, proxies restored, loads and workers
        stopped, watchers closed."""
        self.stack.restore()
        for producer in self._producers:
            producer.close()
        self.workers.close()
        self.monitor.stop()
        self.watch.stop()
        self.redis.close()


@dataclass
class DegradedMark:
    """Redis lost the state: the workers must have marked it degraded (adapters/redis/marker.py)."""

    name = "degraded mark"
    reasons: list[str]

    def problems(self) -> list[str]:
        if any(self.reasons):
            return []
        return ["Redis lost the state and no worker marked it degraded"]
