"""What a fault case watches while it runs, in threads of its own: each worker's /metrics
(accounting, in every scrape), pages, log and memory; the Redis guards' offsets (progress);
and the predictions as they come (when output resumed after a fault)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from redis.exceptions import RedisError

from streamproc.adapters.kafka.client_logs import client_config
from streamproc.config.kafka import KafkaConnection
from streamproc.ports import Codec
from tests.harness.oracles import MarkSampler, RedisState, Topics, accounting_errors
from tests.harness.workers import WorkerProcess, Workers

_LOUD = re.compile(rb"\[(WARNING|ERROR|CRITICAL)\] (.{0,160})")
_MAX_SIGNALS = 500
_UNANSWERED = 3  # probes in a row a live worker left unanswered: it is stuck
_NOT_THERE = 404  # a page the worker does not serve (yet): no signal


@dataclass(frozen=True, slots=True)
class Signal:
    """Something a worker said or did that tells of trouble: a warning or worse in its log,
    a /readyz or /healthz answer other than OK, no answer at all, an exit."""

    at: float  # time.monotonic()
    worker: str
    what: str


class CaseMonitor:
    """Samples every `interval_s` until stopped; the guards' offsets every `marks_every`
    samples (reading every hash costs Redis more than a scrape)."""

    def __init__(
        self,
        workers: Workers,
        redis: RedisState,
        partitions: Sequence[int],
        topics: Topics,
        interval_s: float = 0.5,
    ) -> None:
        self.sampler = MarkSampler()
        self.scrapes = 0
        self.accounting: list[str] = []
        self.signals: list[Signal] = []
        self.last_scrape: dict[str, str] = {}  # worker -> its latest /metrics
        self.marks_every = 4
        self._workers = workers
        self._redis = redis
        self._partitions = list(partitions)
        self._topics = topics
        self._interval_s = interval_s
        self._log_read: dict[str, int] = {}
        self._unanswered: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-monitor", daemon=True)

    def start(self) -> CaseMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling, after one last round."""
        if self._thread.is_alive():
            self._stopping.set()
            self._thread.join(30)
        self._tick(marks=True)

    def first_signal(self, since: float) -> Signal | None:
        exits = [Signal(e.at, e.worker, f"exited {e.code}") for e in self._workers.unasked_exits()]
        after = [s for s in [*self.signals, *exits] if s.at >= since]
        return min(after, key=lambda s: s.at, default=None)

    def counted(self, metric: str, label: str) -> dict[str, int]:
        """A counter summed over the workers' latest scrapes, by one label's values."""
        totals: dict[str, int] = {}
        for text in self.last_scrape.values():
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == metric:
                        value = sample.labels[label]
                        totals[value] = totals.get(value, 0) + int(sample.value)
        return totals

    def _run(self) -> None:
        rounds = 0
        while not self._stopping.wait(self._interval_s):
            rounds += 1
            self._tick(marks=rounds % self.marks_every == 0)

    def _tick(self, marks: bool) -> None:
        for worker in list(self._workers.running):
            if worker.alive():
                worker.rss_mb()
                self._probe(worker)
        for worker in self._workers.all():
            self._read_log(worker)
        if marks:
            self._sample_marks()

    def _probe(self, worker: WorkerProcess) -> None:
        text = worker.metrics()
        if text is None:
            count = self._unanswered.get(worker.name, 0) + 1
            self._unanswered[worker.name] = count
            if count == _UNANSWERED:
                self._signal(worker.name, "/metrics unanswered")
            return
        self._unanswered[worker.name] = 0
        self.last_scrape[worker.name] = text
        self.scrapes += 1
        self.accounting += [f"{worker.name}: {e}" for e in accounting_errors(text, self._topics)]
        for page in ("/readyz", "/healthz"):
            answer = worker.page(page)
            if answer is not None and answer[0] not in (200, _NOT_THERE):
                self._signal(worker.name, f"{page} {answer[0]}")

    def _read_log(self, worker: WorkerProcess) -> None:
        try:
            with worker.log.open("rb") as log:
                log.seek(self._log_read.get(worker.name, 0))
                text = log.read()
        except OSError:
            return
        self._log_read[worker.name] = self._log_read.get(worker.name, 0) + len(text)
        loud = _LOUD.search(text)
        if loud:
            level, line = loud.group(1).decode(), loud.group(2).decode(errors="replace")
            self._signal(worker.name, f"{level}: {line}")

    def _sample_marks(self) -> None:
        try:
            run_id = self._redis.run_id()
            self.sampler.observe(
                run_id, self._redis.marks(self._partitions), self._redis.unit_guard()
            )
        except RedisError:
            pass  # Redis is down (the fault): no sample

    def _signal(self, worker: str, what: str) -> None:
        if len(self.signals) < _MAX_SIGNALS:
            self.signals.append(Signal(time.monotonic(), worker, what))


class OutputWatch:
    """Reads a topic from `start` (read_committed) as it fills, noting when each event id
    first came: the time output resumed after a fault is the first new one after it."""

    def __init__(self, bootstrap: str, topic: str, start: Mapping[int, int], codec: Codec) -> None:
        self._consumer = Consumer(
            client_config(
                KafkaConnection(bootstrap),
                **{
                    "group.id": f"faults-watch-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                },
            )
        )
        self._consumer.assign([TopicPartition(topic, p, o) for p, o in start.items()])
        self._codec = codec
        self.first_seen: dict[str, float] = {}
        self.records = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-watch", daemon=True)
        self._thread.start()

    def seen(self) -> int:
        return len(self.first_seen)

    def first_new_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first event id not seen before it."""
        after = [at for at in self.first_seen.values() if at >= moment]
        return min(after) - moment if after else None

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                for message in self._consumer.consume(1_000, 0.2):
                    if message.error() is None:
                        self.records += 1
                        event_id = self._codec.decode(message.value())["event_id"]
                        self.first_seen.setdefault(event_id, time.monotonic())
        finally:
            self._consumer.close()
