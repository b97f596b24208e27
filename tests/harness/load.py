"""A seeded load of raw shop orders for fault tests, and the producer that sends it.

The orders come from the scenario's generator (streamproc.scenario.shop), so they carry its
messes: app retries (the same event again), resubmitted web forms (a new event id, the same
basket) and broken records, each with its truth. Every record sent gets three headers, which
the worker copies onto what it makes of it (clean order, duplicate audit, dead letter):
`test.run` (this case), `test.id` (this record, unique) and `test.seq` (its number among the
records of its key: per-key order can be checked). Sent keyed as the shop's producers key
them, through an idempotent producer; the delivery reports say where each record landed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.producer import make_producer
from streamproc.config.kafka import KafkaConnection
from streamproc.scenario.shop import GeneratorConfig, Kind, generate, producer_key

RAW_TOPIC = "shop.order.v1"
RAW_SCHEMA = "shop.OrderSubmitted"
RUN_HEADER, ID_HEADER, SEQ_HEADER = "test.run", "test.id", "test.seq"
_PACE_S = 0.01  # sleep once this far ahead of the rate


@dataclass(frozen=True, slots=True)
class LoadRecord:
    """One raw record to send, and what the generator says it is."""

    test_id: str
    seq: int
    key: bytes
    value: bytes
    event_id: str
    kind: Kind  # order, retry, resubmission or invalid
    duplicate_of: str | None = None  # retries and resubmissions: the original's event id

    def test_headers(self, run: bytes) -> tuple[tuple[str, bytes], ...]:
        return (
            (RUN_HEADER, run),
            (ID_HEADER, self.test_id.encode()),
            (SEQ_HEADER, b"%d" % self.seq),
        )


@dataclass
class Load:
    """The records of one case, in sending order; `positions` fills in as they are acked."""

    run: bytes
    records: list[LoadRecord]
    positions: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> partition, offset

    def kinds(self) -> Counter[str]:
        return Counter(record.kind for record in self.records)

    def by_id(self) -> dict[str, LoadRecord]:
        return {record.test_id: record for record in self.records}


def shop_load(serde: AvroSerde, run: str, seed: int, events: int, **rates: float) -> Load:
    """`events` raw orders of the scenario for `seed`; `rates` override the generator's
    (retry_rate, resubmission_rate, invalid_rate, ...). Customers scale with the events, so
    each has a history for the features to keep."""
    config = GeneratorConfig(events=events, seed=seed, customers=min(2_000, max(100, events // 20)))
    scenario = generate(GeneratorConfig(**{**_fields(config), **rates}))
    sequences: Counter[bytes] = Counter()
    records = []
    for index, (event, truth) in enumerate(zip(scenario.events, scenario.truth, strict=True)):
        key = producer_key(event)
        records.append(
            LoadRecord(
                f"{run}/{index}",
                sequences[key],
                key,
                serde.encode(RAW_TOPIC, RAW_SCHEMA, event),
                event["event_id"],
                truth.kind,
                truth.duplicate_of,
            )
        )
        sequences[key] += 1
    return Load(run.encode(), records)


def _fields(config: GeneratorConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in GeneratorConfig.__dataclass_fields__}


class LoadProducer:
    """Sends `records` of a load (all by default) in a thread of its own, at most
    `per_second` a second (None: as fast as the broker takes them); `wait` returns once all
    are acked."""

    def __init__(
        self,
        bootstrap: str,
        load: Load,
        per_second: float | None,
        records: Sequence[LoadRecord] | None = None,
    ) -> None:
        self.load = load
        self.sent = 0
        self.acked = 0
        self.failures: list[str] = []
        self._todo = load.records if records is None else records
        self._per_second = per_second
        self._producer = make_producer(
            KafkaConnection(bootstrap), **{"linger.ms": 20, "queue.buffering.max.messages": 200_000}
        )
        self._thread = threading.Thread(target=self._run, name="fault-load", daemon=True)
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> LoadProducer:
        self._thread.start()
        return self

    def wait(self, timeout_s: float) -> None:
        """Every record acked, or AssertionError saying what was not."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), (
            f"the load was not acked in {timeout_s:.0f} s ({self.acked} of {len(self._todo)})"
        )
        assert not self.failures, f"{len(self.failures)} records failed: {self.failures[:3]}"

    def close(self) -> None:
        """Stop sending and waiting for acks (a case that ended early); idempotent."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        run, started = self.load.run, time.monotonic()
        for count, record in enumerate(self._todo, 1):
            if self._stopping.is_set():
                return
            self._send(record, run)
            self.sent += 1
            self._producer.poll(0)
            if (
                self._per_second
                and (ahead := count / self._per_second - (time.monotonic() - started)) > _PACE_S
            ):
                time.sleep(ahead)
        while self._producer.flush(1.0) and not self._stopping.is_set():
            pass  # an outage of the broker: the idempotent producer retries meanwhile

    def _send(self, record: LoadRecord, run: bytes) -> None:
        def acked(error: Any, message: Any) -> None:
            if error is not None:
                self.failures.append(f"{record.test_id}: {error}")
                return
            with self._lock:
                self.load.positions[record.test_id] = (message.partition(), message.offset())
                self.acked += 1

        while True:
            try:
                self._producer.produce(
                    RAW_TOPIC,
                    record.value,
                    record.key,
                    headers=list(record.test_headers(run)),
                    on_delivery=acked,
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)
