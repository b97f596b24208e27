"""Memory of one worker's model lifecycle over many snapshot cycles: the trainer learns a
cycle's labels and publishes a snapshot, the SnapshotFollower (its own task, polling as the
worker's does) loads every new one and hot-swaps it into the PredictStep, which scores the
cycle's orders. The reference scenario's orders and labels (through run-file, as
models_bench) are replayed, shifted in time, for as many cycles as asked; a cycle of 1,000
labels is one snapshot of the worker at the soak's 50% load (one per ~3 s: 180 cycles ≈ the
10-minute soak). Prints the process RSS before and after, the medians of the first and last
tenth (flat: within ±10%), and, with --trace, the Python allocations that grew.

    python -m benchmarks.memory_bench [--cycles N] [--labels-per-cycle L] [--warm-up W] [--trace]
    python -m benchmarks.memory_bench --broker 127.0.0.1:9092   # a real snapshot topic

Without --broker the snapshot topic is in memory (no broker, no Redis). With it, the trainer
side is the real TrainerLoop (its restore, then its snapshots) and the follower reads a
topic of its own, created for the run and deleted after it.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import statistics
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.snapshots import Keep, SnapshotLog, SnapshotTopic
from streamproc.adapters.metrics import StageMetrics
from streamproc.config.kafka import KafkaConnection
from streamproc.config.models import Models
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.core.features.state import FeatureValue
from streamproc.core.training import Label, ServedX, dump_state
from streamproc.records import Envelope
from streamproc.scenario.shop import GeneratorConfig, generate, write_scenario
from streamproc.stages.feature_step import ServedOrder
from streamproc.stages.predict import PredictStep
from streamproc.tools.run_file import run_file
from streamproc.worker.follower import SnapshotFollower
from streamproc.worker.trainer import TrainerLoop

REPO = Path(__file__).resolve().parents[1]
SCOPE = "memory-bench/shop_orders"


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _trim() -> float:
    """Hands freed memory back (glibc's malloc_trim), as the set-up's garbage before the
    baseline, so it does not hide growth; the ms it took."""
    gc.collect()
    started = time.perf_counter()
    if (malloc_trim := getattr(ctypes.CDLL(None), "malloc_trim", None)) is not None:
        malloc_trim(0)
    return (time.perf_counter() - started) * 1000


class _Log:
    """An in-memory compacted topic, compacted at once: the newest record of each key, with
    the sequence number it was published at (the broker's memory, not the worker's)."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[int, bytes]] = {}
        self.published = 0


class MemorySnapshotTopic:
    """SnapshotTopic's interface on a _Log, one position per reader (per instance)."""

    def __init__(self, log: _Log) -> None:
        self._log = log
        self._position = 0

    def publish(self, key: str, value: bytes) -> None:
        self._log.published += 1
        self._log.records[key] = (self._log.published, value)

    def read_new(self, prefix: str, keep: Keep) -> dict[str, bytes]:
        found = {
            key: value
            for key, (sequence, value) in self._log.records.items()
            if sequence > self._position and key.startswith(prefix)
        }
        self._position = self._log.published
        return found

    def close(self) -> None:
        self._position = 0  # a consumer opened again reads the topic from its start


@dataclass(slots=True)
class Replay:
    """The scenario's orders and labels in event-time order, replayed round after round."""

    spec: PipelineSpec
    timeline: list[tuple[int, ServedOrder | Label]]
    span_ms: int
    labelled: set[str]  # the orders a label comes for
    index: int = 0
    round: int = 0
    offset: int = 0

    def cycle(self, labels: int) -> tuple[list[ServedOrder], list[Label]]:
        """The next orders and labels, until `labels` labels."""
        orders: list[ServedOrder] = []
        found: list[Label] = []
        while len(found) < labels:
            if self.index == len(self.timeline):
                self.index, self.round = 0, self.round + 1
            _, item = self.timeline[self.index]
            self.index += 1
            self.offset += 1
            shift, suffix = self.round * self.span_ms, f"#{self.round}" if self.round else ""
            if isinstance(item, Label):
                found.append(
                    Label(
                        item.event_id + suffix,
                        item.value,
                        item.occurred_at_ms + shift,
                        0,
                        self.offset,
                    )
                )
                continue
            at = int(item.record["occurred_at"]) + shift
            record = {**item.record, "event_id": item.record["event_id"] + suffix}
            record["occurred_at"] = at
            envelope = Envelope(self.spec.sink.topic, 0, self.offset, None, None, (), at)
            orders.append(ServedOrder(envelope, record, item.features))
        return orders, found


async def replay(events: int) -> tuple[Replay, SchemaCatalog]:
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    catalog = SchemaCatalog.load(REPO / "schemas")
    scenario = generate(GeneratorConfig(events=events, seed=7))
    with tempfile.TemporaryDirectory() as tmp:
        source, _, _ = write_scenario(scenario, Path(tmp) / "orders.jsonl")
        await run_file(spec, catalog, b"bench-key", source, Path(tmp) / "out")
        out = Path(tmp) / "out"
        clean, features = (
            (out / f"{n}.jsonl").read_text().splitlines() for n in ("clean", "features")
        )
    served = {
        line["event_id"]: {k: FeatureValue(**v) for k, v in line["features"].items()}
        for line in map(json.loads, features)
    }
    timeline: list[tuple[int, ServedOrder | Label]] = []
    for record in map(json.loads, clean):
        envelope = Envelope(spec.sink.topic, 0, 0, None, None, (), record["occurred_at"])
        order = ServedOrder(envelope, record, served.get(record["event_id"], {}))
        timeline.append((record["occurred_at"], order))
    for outcome in scenario.outcomes:
        label = Label(outcome["event_id"], bool(outcome["is_fraud"]), outcome["occurred_at"], 0, 0)
        timeline.append((outcome["occurred_at"], label))
    timeline.sort(key=lambda item: (item[0], isinstance(item[1], Label)))
    span = timeline[-1][0] - timeline[0][0] + 1
    labelled = {outcome["event_id"] for outcome in scenario.outcomes}
    return Replay(spec, timeline, span, labelled), catalog


@dataclass(slots=True)
class Figures:
    """What the cycles measured: the RSS after each, the labels learned, the model swaps."""

    rss_mb: list[float] = field(default_factory=list)
    learned: list[int] = field(default_factory=list)
    swaps: int = 0


async def run(  # noqa: C901, PLR0912, PLR0913, PLR0915, PLR0917 - one measured run, in order
    cycles: int,
    labels: int,
    events: int,
    broker: str | None,
    trace: bool,
    warm_up: int = 0,
) -> dict[str, Any]:
    data, catalog = await replay(events)
    models: Models | None = data.spec.models
    if models is None:
        raise SystemExit("pipelines/shop_orders.yaml declares no models")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    step = PredictStep(models, serde)
    metrics = StageMetrics()
    topic_name = f"bench.memory.{uuid.uuid4().hex[:8]}"
    if broker:
        _create_topic(broker, topic_name)
        follower_topic: SnapshotLog = SnapshotTopic(KafkaConnection(broker), topic_name)
    else:
        follower_topic = MemorySnapshotTopic(log := _Log())
    follower = SnapshotFollower(SCOPE, follower_topic, step, metrics)
    # The trainer side is TrainerLoop's own code (restore, then a snapshot per cycle) on a
    # topic object of its own, as in a worker; what it needs of Kafka and Redis aside.
    loop = TrainerLoop.__new__(TrainerLoop)
    loop._pipeline, loop._declared, loop._metrics = SCOPE, models, metrics
    loop._snapshots = (
        SnapshotTopic(KafkaConnection(broker), topic_name) if broker else MemorySnapshotTopic(log)
    )
    figures = Figures()
    traced_then: tracemalloc.Snapshot | None = None
    try:
        trainer = await loop._restore()
        served: dict[str, ServedX] = {}
        await follower.poll()
        following = asyncio.ensure_future(follower.follow(0.1))
        _trim()
        if not warm_up:
            figures.rss_mb.append(rss_mb())
        started = time.monotonic()
        for cycle in range(1 - warm_up, cycles + 1):  # cycles up to 0 warm up, unmeasured
            if cycle == 1 and warm_up:  # the models as a soak finds them, its heap as is
                figures.rss_mb.append(rss_mb())
            if cycle == 1 and trace:
                tracemalloc.start()
            orders, found = data.cycle(labels)
            predicted = step.process(orders, now_ms=0)
            # The served-x log is Redis' memory, not the worker's: here it keeps only the x
            # a label will come for, until it is learned.
            served.update(
                (event_id, x)
                for event_id, x in predicted.served
                if event_id.partition("#")[0] in data.labelled
            )
            watermark = max((o.envelope.timestamp_ms or 0 for o in orders), default=0)
            trainer.accept(found)
            due = trainer.due(watermark)
            joined = {d.event_id: served.pop(d.event_id) for d in due if d.event_id in served}
            await asyncio.to_thread(trainer.learn, due, joined, watermark)
            await loop._snapshot(trainer, 1)
            await asyncio.sleep(0.15)  # the follower's turn: it polls every 0.1 s
            if cycle < 1:
                continue
            figures.rss_mb.append(rss_mb())
            figures.learned.append(trainer.state.learned)
            if trace and cycle == max(1, cycles // 4):
                gc.collect()  # what is alive, not what awaits the collector
                traced_then = tracemalloc.take_snapshot()
            if cycle % max(1, cycles // 10) == 0:
                print(
                    f"cycle {cycle:>4}: {trainer.state.learned:>7} labels learned, serving "
                    f"v{step.serving.version}, RSS {figures.rss_mb[-1]:.0f} MB",
                    flush=True,
                )
        following.cancel()
        elapsed = time.monotonic() - started
        trim_ms = _trim()
        top: list[str] = []
        traced = 0.0
        if trace and traced_then is not None:
            gc.collect()
            now = tracemalloc.take_snapshot()
            traced = tracemalloc.get_traced_memory()[0] / 2**20
            top = [str(s) for s in now.compare_to(traced_then, "lineno")[:10]]
            tracemalloc.stop()
    finally:
        follower_topic.close()
        loop._snapshots.close()
        if broker:
            _delete_topic(broker, topic_name)
    samples = figures.rss_mb
    tenth = max(1, len(samples) // 10)
    first, last = statistics.median(samples[:tenth]), statistics.median(samples[-tenth:])
    return {
        "cycles": cycles,
        "warm_up_cycles": warm_up,
        "labels_learned": figures.learned[-1] if figures.learned else 0,
        "serving_version": step.serving.version,
        "seconds": elapsed,
        "rss_before_mb": samples[0],
        "rss_after_mb": samples[-1],
        "rss_max_mb": max(samples),
        "first_tenth_median_mb": first,
        "last_tenth_median_mb": last,
        "growth": last / first - 1,
        "traced_mb": traced,
        "malloc_trim_ms": trim_ms,
        "snapshot_mb": len(dump_state(trainer.state, SCOPE, 1, 0)) / 2**20,
        "top_growth": top,
        "topic": "kafka" if broker else "in memory",
    }


def _create_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"cleanup.policy": "compact", "max.message.bytes": "16777216"}
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result()


def _delete_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the result is in
    admin.delete_topics([name])[name].result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=180, help="snapshots published")
    parser.add_argument("--labels-per-cycle", type=int, default=1_000)
    parser.add_argument(
        "--warm-up", type=int, default=0, help="cycles before the baseline (models trained)"
    )
    parser.add_argument("--events", type=int, default=20_000, help="scenario replayed")
    parser.add_argument("--broker", help="host:port: snapshots through a real topic")
    parser.add_argument("--trace", action="store_true", help="tracemalloc: what grew")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    figures = asyncio.run(
        run(
            args.cycles,
            args.labels_per_cycle,
            args.events,
            args.broker,
            args.trace,
            args.warm_up,
        )
    )
    print(
        f"{figures['cycles']} snapshot cycles after {figures['warm_up_cycles']} of warm-up "
        f"({figures['topic']} topic), "
        f"{figures['labels_learned']} labels learned, {figures['seconds']:.0f} s: "
        f"RSS {figures['rss_before_mb']:.0f} → {figures['rss_after_mb']:.0f} MB "
        f"(max {figures['rss_max_mb']:.0f}); medians of the first and last tenth "
        f"{figures['first_tenth_median_mb']:.0f} → {figures['last_tenth_median_mb']:.0f} MB "
        f"({figures['growth']:+.0%}); snapshot {figures['snapshot_mb']:.1f} MB, one "
        f"malloc_trim at the end {figures['malloc_trim_ms']:.1f} ms"
    )
    if figures["top_growth"]:
        print(f"traced by Python at the end: {figures['traced_mb']:.1f} MB; grew most:")
        for line in figures["top_growth"]:
            print(f"  {line}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
