"""The worker, one process, real broker and Redis: events/s from a backlog, for the clean
stage alone and for clean + features.

Baselines in the same run, on the same bytes, one process each: a confluent-kafka
consume→produce pass-through, and a plain Faust agent that forwards them in the same batches
(benchmarks/faust_passthrough.py): the ceiling of any Faust worker. Needs the local stack
(`make up`). Run with `make bench`; `--profile` also samples the clean + features worker
with py-spy (if installed) and prints where its time went.

    python -m benchmarks.clean_worker_bench [--events N] [--profile]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets, start_group_at
from streamproc.adapters.kafka.producer import produce_all
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.config.kafka import KafkaConnection
from streamproc.scenario.shop import GeneratorConfig, generate, producer_key

REPO = Path(__file__).resolve().parents[1]
RAW, SCHEMA, CLEAN = "shop.order.v1", "shop.OrderSubmitted", "shop.order.clean.v1"
PASSTHROUGH_SINK = "bench.passthrough"
BOOTSTRAP = os.environ.get("STREAMPROC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
KAFKA = KafkaConnection(BOOTSTRAP)
REDIS_URL = os.environ.get("STREAMPROC_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKER = [sys.executable, "-m", "streamproc.cli", "worker"]
FAUST_PASSTHROUGH = [sys.executable, "-m", "benchmarks.faust_passthrough", "worker"]
Counted = Callable[[str], float]  # how many records a worker at this base URL has consumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--profile", action="store_true", help="py-spy the worker")
    args = parser.parse_args()
    catalog = SchemaCatalog.load(REPO / "schemas")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    print(f"generating {args.events} scenario events …", flush=True)
    config = GeneratorConfig(events=args.events, seed=5, customers=max(2_000, args.events // 10))
    scenario = generate(config)
    records = [(producer_key(e), serde.encode(RAW, SCHEMA, e), None) for e in scenario.events]
    start = end_offsets(KAFKA, RAW)
    produce_all(KAFKA, RAW, records)  # the backlog: produced before anyone consumes
    kafka = kafka_passthrough(start, len(records))
    orders = sum(1 for t in scenario.truth if t.kind == "order")
    raw_count, clean_count = _consumed(RAW), _consumed(CLEAN)
    runs = [
        WorkerRun("Faust agent pass-through (baseline)", FAUST_PASSTHROUGH, count_page,
                  count_page, len(records)),
        WorkerRun("worker: clean stage only", WORKER, raw_count, raw_count, len(records),
                  {"STREAMPROC_PIPELINE": str(_without_features())}),
        WorkerRun("worker: clean + features (two agents)", WORKER, raw_count, clean_count, orders),
    ]  # fmt: skip
    profiled = runs[-1] if args.profile else None
    rates = [worker_rate(run, start, run is profiled, len(records)) for run in runs]
    faust = rates[0]
    print(f"{len(records)} events from a backlog, one process each, broker and Redis on loopback")
    print(f"{'pipeline':<44} {'events/s':>10} {'× Kafka':>8} {'× Faust':>8}")
    rows = [("confluent-kafka consume→produce (baseline)", kafka)]
    rows += [(run.name, rate) for run, rate in zip(runs, rates, strict=True)]
    for name, rate in rows:
        print(f"{name:<44} {rate:>10,.0f} {rate / kafka:>8.3f} {rate / faust:>8.2f}")


def _without_features() -> Path:
    """The reference pipeline with its feature views taken out."""
    declaration = yaml.safe_load((REPO / "pipelines/shop_orders.yaml").read_text())
    declaration["features"] = {"views": []}
    path = Path(tempfile.mkdtemp(prefix="streamproc-bench-")) / "clean_only.yaml"
    path.write_text(yaml.safe_dump(declaration))
    return path


def kafka_passthrough(start: list[TopicPartition], expected: int) -> float:
    """The same bytes through the plainest consume→produce loop there is: the ceiling."""
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    if PASSTHROUGH_SINK not in admin.list_topics(timeout=10).topics:
        admin.create_topics([NewTopic(PASSTHROUGH_SINK, 6, 1)])[PASSTHROUGH_SINK].result()
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 5})
    consumer.assign(start)
    seen = 0
    started = time.perf_counter()
    while seen < expected:
        for message in consumer.consume(num_messages=500, timeout=1.0):
            if message.error() is None:
                producer.produce(PASSTHROUGH_SINK, message.value(), message.key())
                seen += 1
        producer.poll(0)
    producer.flush(30)
    elapsed = time.perf_counter() - started
    consumer.close()
    return expected / elapsed


@dataclass(frozen=True, slots=True)
class WorkerRun:
    """A process to measure: how to start it, and the counters that tell its first record
    read (`first`) and its last stage done (`last` at `expected`)."""

    name: str
    command: list[str]
    first: Counted
    last: Counted
    expected: int
    env_overrides: dict[str, str] = field(default_factory=dict)


def worker_rate(run: WorkerRun, start: list[TopicPartition], profile: bool, events: int) -> float:
    """Starts the run's worker with a group that begins at the backlog. Events/s from its first
    record until its last stage is done."""
    command = run.command
    group = f"bench-clean-{uuid.uuid4().hex[:8]}"
    start_group_at(KAFKA, group, start)
    start_group_at(KAFKA, group, end_offsets(KAFKA, CLEAN))  # features: this run only
    work = Path(tempfile.mkdtemp(prefix="streamproc-bench-"))
    port = "6099"
    env = {
        **os.environ,
        "STREAMPROC_APP_ID": group,
        "STREAMPROC_REDIS_NAMESPACE": group,
        "STREAMPROC_WEB_PORT": port,
        "STREAMPROC_DATA_DIR": str(work / "state"),
        "STREAMPROC_LOG_LEVEL": "warning",
        **run.env_overrides,
    }
    spy = shutil.which(
        "py-spy", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if profile and spy:
        command = [spy, "record", "-o", str(work / "profile.txt"), "-f", "raw", "--", *command]
    log = (work / "worker.log").open("wb")
    worker = subprocess.Popen(command, env=env, stdout=log, stderr=log)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        first_at, first_count = _wait_for(run.first, url, lambda n: n > 0, 120)
        last_at, _ = _wait_for(run.last, url, lambda n: n >= run.expected, 600)
    finally:
        worker.send_signal(2)  # SIGINT: py-spy writes its profile, the worker stops cleanly
        worker.wait(60)
        delete_namespace(REDIS_URL, group)
    if profile and spy:
        _print_profile(work / "profile.txt")
    return (events - first_count) / (last_at - first_at)


def _wait_for(
    count: Counted, url: str, done: Callable[[float], bool], timeout_s: float
) -> tuple[float, float]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            seen = count(url)
        except OSError:  # not serving yet
            seen = None
        if seen is not None and done(seen):
            return time.perf_counter(), seen
        time.sleep(0.25)  # scraping costs the worker CPU: not too often
    raise SystemExit(f"the worker did not get there in {timeout_s:.0f} s")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
        text: str = response.read().decode()
        return text


def count_page(url: str) -> float:
    return float(_get(f"{url}/count"))


def _consumed(topic: str) -> Counted:
    """Counts what a streamproc worker has consumed from `topic`, from its metrics."""

    def count(url: str) -> float:
        for family in text_string_to_metric_families(_get(f"{url}/metrics")):
            for sample in family.samples:
                if (
                    sample.name == "streamproc_records_consumed_total"
                    and sample.labels.get("topic") == topic
                ):
                    return float(sample.value)
        return 0.0

    return count


def _print_profile(path: Path) -> None:
    """Share of samples per function (own time), from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
        total += int(count)
    print(f"worker profile (py-spy, {total} samples, own time):")
    for leaf, samples in sorted(own.items(), key=lambda item: -item[1])[:20]:
        print(f"  {100 * samples / total:5.1f}%  {leaf}")


if __name__ == "__main__":
    main()
