"""The full pipeline (clean, features, predict, learn) on the real broker and Redis, against
baselines measured in the same run on the same bytes; writes BENCHMARKS.md and
bench/results/<UTC time>.json.

- backlog: the scenario's orders and labels are produced (pre-encoded) before anyone reads;
  events/s of a confluent-kafka consume→produce loop, a plain Faust agent, and the worker
  with one process and with two (one consumer group);
- live: one worker at 25%, 50% and 75% of its backlog rate, after an unmeasured warm-up;
  latency from the producer's send (the raw record's timestamp, which the prediction keeps)
  to the prediction consumed;
- the worker's RSS over each run, and a soak at 50% (`--soak-minutes`) for flatness;
- Redis memory per entity; with `--profile`, µs per event per stage from py-spy.

    python -m benchmarks.pipeline_bench [--events N] [--live-seconds S] [--soak-minutes M]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, TopicPartition

from benchmarks.clean_worker_bench import (
    BOOTSTRAP,
    FAUST_PASSTHROUGH,
    KAFKA,
    PASSTHROUGH_SINK,
    RAW,
    REDIS_URL,
    REPO,
    WORKER,
    WorkerRun,
    count_page,
    kafka_passthrough,
    worker_rate,
)
from benchmarks.hotpath_bench import events_per_s as hotpath_events_per_s
from benchmarks.replay_bench import replay_rate
from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets, start_group_at
from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC, forget_models
from streamproc.adapters.kafka.producer import make_producer, produce_records
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.config.kafka import KafkaConnection
from streamproc.config.pipeline import load_pipeline
from streamproc.config.settings import Settings
from streamproc.scenario.shop import HOUR_MS, GeneratorConfig, Scenario, generate
from streamproc.tools.demo import live_records

CLEAN, LABELS = "shop.order.clean.v1", "shop.order_outcome.v1"
PREDICTIONS = "shop.order_prediction.v1"
PASSTHROUGH = PASSTHROUGH_SINK
GROUP_PREFIX = "bench-full"  # a backlog run's consumer group and Redis namespace start so
SHOP_PIPELINE = "pipelines/shop_orders.yaml"
WARM_UP_S = 10.0  # unmeasured load first: assignment, the first snapshot, cold caches
BACKLOG_TIMEOUT_S = 1_800  # a backlog run slower than this is broken, not slow
QUIET_S = 3  # once the load stops, the predictions are all read when none came for this long
PACE_S = 0.002  # the load generator sleeps once this far ahead of its rate
Record = tuple[str, bytes | None, bytes, None]
STAGES = {  # a py-spy frame that names the stage → the stage (first match, innermost first)
    "EpollSelector.select": "idle: event loop waiting",
    "concurrent/futures/thread.py:81": "idle: thread pool waiting",
    "PartitionReader.read": "idle: trainer polling labels",
    "SnapshotTopic.read_new": "idle: polling snapshots",
    "_bootstrap": "start-up: imports",
    "CleanStage.process": "clean",
    "FeatureStage.process": "features",
    "PredictStep.process": "predict",
    "Trainer.learn": "learn",
    "dump_state": "snapshots",
    "BatchSender.send": "send (librdkafka, acks)",
    "RedisServedLog": "served-x log (Redis)",
}


BACKLOG_RUNS: tuple[
    tuple[str, int, bool, dict[str, str]], ...
] = (  # results key, inference workers, trainer in a process of its own, settings
    ("serving_events_per_s", 1, True, {}),
    # the cost of exactly-once: the same run without transactions, next to it
    ("serving_at_least_once_events_per_s", 1, True, {"STREAMPROC_DELIVERY": "at-least-once"}),
    ("serving_two_workers_events_per_s", 2, True, {}),
    ("full_pipeline_events_per_s", 1, False, {}),
)
BATCH_PASSTHROUGH = [sys.executable, "-m", "benchmarks.batch_passthrough"]


@dataclass(frozen=True)
class Servers:
    """The broker and Redis of a run: how the bench reaches them (plaintext, Redis' default
    user: offsets, the backlog, clean-up) and the settings its workers are given for them
    (none: the environment's, the local stack)."""

    kafka: KafkaConnection = KAFKA
    redis_url: str = REDIS_URL
    worker_env: Mapping[str, str] = field(default_factory=dict)


LOCAL = Servers()


@dataclass
class Workers:
    """The worker processes of a run, where their metrics are read, and their consumer group."""

    processes: list[subprocess.Popen[bytes]]
    urls: list[str]
    group: str
    servers: Servers = LOCAL
    profile: Path | None = None  # py-spy's output, when the first worker runs under it
    rss_mb: list[float] = field(default_factory=list)  # the first process's, sampled

    def produced(self, topic: str) -> float:
        return sum(_metric(url, "streamproc_records_produced_total", topic) for url in self.urls)

    def consumed(self, topic: str) -> float:
        return sum(_metric(url, "streamproc_records_consumed_total", topic) for url in self.urls)

    def sample_rss(self) -> None:
        """The first process's (a serving worker's; a trainer process is not counted)."""
        self.rss_mb.append(_rss_mb(self.processes[0].pid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000, help="backlog size")
    parser.add_argument("--live-seconds", type=float, default=20.0)
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="0: no soak")
    parser.add_argument("--profile", action="store_true", help="py-spy the one-worker run")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results")
    args = parser.parse_args()
    catalog = SchemaCatalog.load(REPO / "schemas")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    since_ms = int(time.time() * 1000) - 1000  # the backlog is logged from then on
    backlog, drained = produce_backlog(KAFKA, serde, args.events)
    raw_start, raw_count = drained.start[RAW], drained.events
    results: dict[str, Any] = {"events": raw_count, "labels": len(backlog.outcomes)}
    results["commit_interval_s"] = _commit_interval_s()
    results["kafka_passthrough_events_per_s"] = kafka_passthrough(raw_start, raw_count)
    for key, command in (("faust", FAUST_PASSTHROUGH), ("batch", BATCH_PASSTHROUGH)):
        passthrough = WorkerRun(f"{key} pass-through", command, count_page, count_page, raw_count)
        rate = worker_rate(passthrough, raw_start, False, raw_count)
        results[f"{key}_passthrough_events_per_s"] = rate
    results["hotpath_events_per_s"] = hotpath_events_per_s(min(raw_count, 20_000))
    for key, n, trainer_apart, settings in BACKLOG_RUNS:
        profile = args.profile and key == "serving_events_per_s"
        run = backlog_run(Roles(n, trainer_apart, settings), drained, profile)
        results[key] = run.rate
        results[key.replace("events_per_s", "rss_mb")] = run.rss
        if key == "serving_events_per_s":
            results["redis_bytes_per_entity"] = run.redis_memory
            results["stage_us_per_event"] = run.stages
            results["trainer_labels_per_s"] = run.labels_per_s
        print(f"{key}: {run.rate:,.0f} events/s", flush=True)
    results.update(_delivery_runs(results, drained))
    # before the live runs, which add to the raw topic: the replay reads from the backlog on
    results["replay_events_per_s"] = replay_rate(since_ms, drained.events, drained.orders)
    results["replay_to_live"] = (
        results["replay_events_per_s"] / results["full_pipeline_events_per_s"]
    )
    print(f"replay: {results['replay_events_per_s']:,.0f} events/s", flush=True)
    serving = results["serving_events_per_s"]
    results["live"] = _live(serving, args.live_seconds, args.soak_minutes, serde)
    at_half = results["live"]["50%"]
    for stat in ("p50", "p99"):
        results[f"e2e_{stat}_ms_at_50pct"] = at_half[f"{stat}_ms"]
    results["e2e_max_ms_at_50pct"] = at_half["max_ms"]
    if "soak at 50%" in results["live"]:
        rss = results["live"]["soak at 50%"]["rss_mb"]
        growth = rss["last_tenth_median_mb"] / rss["first_tenth_median_mb"] - 1
        results["soak_rss_growth_pct"] = 100 * growth
    results["faust_passthrough_p99_ms_at_50pct"] = results["live"]["Faust pass-through at 50%"][
        "p99_ms"
    ]
    results["serving_to_hotpath"] = serving / results["hotpath_events_per_s"]
    results["exactly_once_to_at_least_once"] = statistics.mean(
        results["exactly_once_runs"]
    ) / statistics.mean(results["at_least_once_runs"])
    results["ratio_to_faust"] = serving / results["faust_passthrough_events_per_s"]
    results["ratio_to_kafka"] = serving / results["kafka_passthrough_events_per_s"]
    _write(results, args.out)


def _delivery_runs(results: Mapping[str, Any], drained: Backlog) -> dict[str, list[float]]:
    """The serving run once more in each delivery mode, in the reverse order (exactly once,
    at least once, ..., at least once, exactly once): the machine's drift over the bench
    weighs on both modes alike."""
    rates = {
        "exactly_once_runs": [results["serving_events_per_s"]],
        "at_least_once_runs": [results["serving_at_least_once_events_per_s"]],
    }
    for key, settings in (
        ("at_least_once_runs", {"STREAMPROC_DELIVERY": "at-least-once"}),
        ("exactly_once_runs", {}),
    ):
        rate = backlog_run(Roles(1, True, settings), drained, False).rate
        rates[key].append(rate)
        print(f"{key}: {rate:,.0f} events/s", flush=True)
    return rates


def _commit_interval_s() -> float:
    """The workers' commit interval: STREAMPROC_COMMIT_INTERVAL_S, else the default."""
    default = Settings.model_fields["commit_interval_s"].default
    return float(os.environ.get("STREAMPROC_COMMIT_INTERVAL_S", default))


def produce_backlog(
    kafka: KafkaConnection, serde: AvroSerde, events: int
) -> tuple[Scenario, Backlog]:
    """The shop scenario's `events` and their labels, generated and produced (pre-encoded)
    before anyone reads them."""
    print(f"generating {events} backlog events …", flush=True)
    backlog = generate(GeneratorConfig(events=events, seed=5, customers=events // 10))
    start = {topic: end_offsets(kafka, topic) for topic in (RAW, LABELS)}
    produce_records(kafka, interleaved(backlog, serde))
    orders = sum(1 for t in backlog.truth if t.kind == "order")
    return backlog, Backlog(start, len(backlog.events), orders)


def interleaved(scenario: Scenario, serde: AvroSerde) -> list[Record]:
    """Pre-encoded, as the demo sends them: each label once the orders have reached its time."""
    orders = (RAW, functools.partial(serde.encode, RAW, "shop.OrderSubmitted"))
    labels = (LABELS, functools.partial(serde.encode, LABELS, "shop.OrderOutcome"))
    return list(live_records(orders, labels, scenario))


def _start(
    roles: Roles,
    backlog: dict[str, list[TopicPartition]],
    profile: bool,
    servers: Servers = LOCAL,
) -> Workers:
    """`roles.serving` workers of a new group, reading from `backlog` offsets where given,
    else from the topics' ends (this run's records only); with `roles.trainer_apart`, they only
    serve and one more process only trains (STREAMPROC_TRAINER=false,
    STREAMPROC_INFERENCE=false)."""
    n, trainer_apart, settings = roles.serving, roles.trainer_apart, roles.settings
    group = f"{GROUP_PREFIX}-{uuid.uuid4().hex[:8]}"
    kafka = servers.kafka
    for topic in (CLEAN, LABELS, RAW):
        start_group_at(kafka, group, backlog.get(topic) or end_offsets(kafka, topic))
    work = Path(tempfile.mkdtemp(prefix="streamproc-bench-"))
    processes, urls = [], []
    role_settings = [{"STREAMPROC_TRAINER": "false"} if trainer_apart else {}] * n
    if trainer_apart:
        role_settings.append({"STREAMPROC_INFERENCE": "false"})
    for i, role in enumerate(role_settings):
        port = str(6099 + i)
        env = {
            **os.environ,
            "STREAMPROC_APP_ID": group,
            "STREAMPROC_REDIS_NAMESPACE": group,
            "STREAMPROC_WEB_PORT": port,
            "STREAMPROC_WORKER_ID": f"bench-{i}",
            "STREAMPROC_DATA_DIR": str(work / f"state{i}"),
            "STREAMPROC_LOG_LEVEL": "warning",
            **servers.worker_env,
            **settings,
            **role,
        }
        command = WORKER
        if profile and i == 0:
            spy = str(Path(sys.executable).parent / "py-spy")
            command = [spy, "record", "-o", str(work / "profile.txt"), "-f", "raw", "--", *WORKER]
        log = (work / f"worker{i}.log").open("wb")
        processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))  # noqa: S603
        urls.append(f"http://127.0.0.1:{port}")
    workers = Workers(processes, urls, group, servers, work / "profile.txt" if profile else None)
    deadline = time.monotonic() + 120
    while True:
        try:
            workers.consumed(RAW)
            return workers
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not start; logs in {work}") from None
            time.sleep(0.3)


def _stop(workers: Workers) -> None:
    for process in workers.processes:
        process.send_signal(2)  # SIGINT: a clean stop; py-spy writes its profile
    for process in workers.processes:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            print(f"process {process.pid} ignored SIGINT for 60 s: killed; its threads:")
            spy = str(Path(sys.executable).parent / "py-spy")
            subprocess.run([spy, "dump", "--pid", str(process.pid)], check=False)  # noqa: S603
            process.kill()
            process.wait()
    delete_namespace(workers.servers.redis_url, workers.group)
    pipeline = load_pipeline(Path(os.environ.get("STREAMPROC_PIPELINE", REPO / SHOP_PIPELINE)))
    snapshots = SnapshotTopic(workers.servers.kafka, SNAPSHOTS_TOPIC)
    forget_models(snapshots, f"{workers.group}/{pipeline.name}")


@dataclass
class BacklogRun:
    """One backlog drained: the rate, the memory of the worker and of Redis, each stage's share
    of the time, and the trainer's pace."""

    rate: float  # events/s from the first raw record read to the last prediction sent
    rss: dict[str, float]
    redis_memory: dict[str, float | None]
    stages: dict[str, float]
    labels_per_s: float | None  # the trainer process's, while the workers served the backlog


@dataclass(frozen=True)
class Roles:
    """The workers of a backlog run: how many serve, whether one more only trains, and the
    settings they all get besides."""

    serving: int
    trainer_apart: bool
    settings: dict[str, str]


@dataclass(frozen=True)
class Backlog:
    """A backlog produced before the run: where it starts, its raw events, the orders among
    them (one prediction each)."""

    start: dict[str, list[TopicPartition]]
    events: int
    orders: int


def backlog_run(
    roles: Roles, backlog: Backlog, profile: bool, servers: Servers = LOCAL
) -> BacklogRun:
    """`roles` drain `backlog`, on `servers`; the rate is of its events, until its orders'
    predictions are all sent."""
    n, trainer_apart, raw_count = roles.serving, roles.trainer_apart, backlog.events
    workers = _start(roles, backlog.start, profile, servers)
    try:
        while workers.consumed(RAW) == 0:
            time.sleep(0.05)
        started = time.perf_counter()
        while workers.produced(PREDICTIONS) < backlog.orders:
            if time.perf_counter() - started > BACKLOG_TIMEOUT_S:
                raise SystemExit(f"{n} worker(s): not done in {BACKLOG_TIMEOUT_S // 60} minutes")
            workers.sample_rss()
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        memory = _redis_memory(servers.redis_url, workers.group)
        learned = _labels_learned(workers.urls[-1]) if trainer_apart else None
    finally:
        _stop(workers)
    stages = _stage_costs(workers.profile, raw_count) if workers.profile else {}
    labels_per_s = None if learned is None else learned / elapsed
    return BacklogRun(raw_count / elapsed, _rss(workers), memory, stages, labels_per_s)


def _labels_learned(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=2) as response:  # noqa: S310
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith('streamproc_labels_total{outcome="learned"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _live(
    full_rate: float, seconds: float, soak_minutes: float, serde: AvroSerde
) -> dict[str, Any]:
    """Latency at fixed shares of the backlog rate, one worker, then an optional soak."""
    phases = [("25%", 0.25, seconds), ("50%", 0.5, seconds), ("75%", 0.75, seconds)]
    if soak_minutes:
        phases.append(("soak at 50%", 0.5, soak_minutes * 60))
    needed = sum(int(full_rate * share * length) + 1000 for _, share, length in phases)
    needed += 2 * (int(full_rate * 0.5 * seconds) + 1000)  # the two pass-throughs' share
    needed += int(full_rate * 0.5 * seconds) + 1000  # at least once, for its latency
    needed += 4 * (int(full_rate * 0.25 * WARM_UP_S) + 1000)  # the warm-ups
    print(f"generating {needed} live events …", flush=True)
    start_ms = GeneratorConfig().start_ms + 48 * HOUR_MS  # after the backlog's event time
    live = generate(
        GeneratorConfig(events=needed, seed=6, start_ms=start_ms, duration_ms=36 * HOUR_MS)
    )
    records = iter(interleaved(live, serde))
    report: dict[str, Any] = {}
    passthroughs = (  # the same kind of load through one hop with no work
        ("Faust pass-through at 50%", [*FAUST_PASSTHROUGH, "-l", "warn"], "6098"),
        ("batch pass-through at 50%", BATCH_PASSTHROUGH, "6097"),
    )
    for name, command, port in passthroughs:
        passthrough = _start_passthrough(command, port)
        try:
            _measure(passthrough, records, full_rate * 0.25, WARM_UP_S, PASSTHROUGH)
            latencies, rss = _measure(passthrough, records, full_rate * 0.5, seconds, PASSTHROUGH)
            report[name] = _latency(full_rate * 0.5, latencies, rss)
        finally:
            for process in passthrough.processes:
                process.terminate()
                process.wait(60)
    # exactly once (the default), then at 50% at least once: what the transactions cost in
    # latency (readers see outputs once committed, at each hop through a topic)
    at_least_once = {"STREAMPROC_DELIVERY": "at-least-once"}
    for settings, runs in (({}, phases), (at_least_once, [("50%, at least once", 0.5, seconds)])):
        workers = _start(Roles(1, True, settings), {}, False)
        try:
            _measure(workers, records, full_rate * 0.25, WARM_UP_S, PREDICTIONS)
            for name, share, length in runs:
                rate = full_rate * share
                latencies, rss = _measure(workers, records, rate, length, PREDICTIONS)
                report[name] = _latency(rate, latencies, rss)
                print(f"live {name}: {report[name]}", flush=True)
        finally:
            _stop(workers)
    return report


def _rss(workers: Workers, since: int = 0) -> dict[str, float]:
    """First, last and highest RSS from sample `since` on, and the medians of the first and
    last tenth of the samples (flat: within ±10% of each other)."""
    samples = workers.rss_mb[since:]
    tenth = max(1, len(samples) // 10)
    return {
        "first_mb": samples[0],
        "last_mb": samples[-1],
        "max_mb": max(samples),
        "first_tenth_median_mb": statistics.median(samples[:tenth]),
        "last_tenth_median_mb": statistics.median(samples[-tenth:]),
    }


def _latency(rate: float, latencies: list[float], rss: dict[str, float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "events_per_s": rate,
        "predictions": len(ordered),
        **{f"p{p}_ms": _pct(ordered, p) for p in (50, 95, 99)},
        "max_ms": ordered[-1] if ordered else None,
        "rss_mb": rss,
    }


def _start_passthrough(command: list[str], port: str) -> Workers:
    group = f"bench-pass-{uuid.uuid4().hex[:8]}"
    start_group_at(KAFKA, group, end_offsets(KAFKA, RAW))
    work = Path(tempfile.mkdtemp(prefix="streamproc-bench-"))
    env = {
        **os.environ,
        "STREAMPROC_APP_ID": group,
        "STREAMPROC_WEB_PORT": port,
        "STREAMPROC_DATA_DIR": str(work / "state"),
        "STREAMPROC_LOG_LEVEL": "warning",
    }
    log = (work / "passthrough.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log)  # noqa: S603
    workers = Workers([process], [f"http://127.0.0.1:{port}"], group)
    deadline = time.monotonic() + 120
    while True:
        try:
            count_page(workers.urls[0])
            time.sleep(5)  # its partitions assigned
            return workers
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"the Faust pass-through did not start; see {work}") from None
            time.sleep(0.3)


def _measure(
    workers: Workers, records: Any, rate: float, seconds: float, sink: str
) -> tuple[list[float], dict[str, float]]:
    """Produce raw events at `rate`/s (labels beside them) for `seconds`; the latencies of the
    records that arrive on `sink` meanwhile and until the worker has caught up (the sink
    keeps the raw record's timestamp: the producer's send time)."""
    consumer = Consumer(
        {"bootstrap.servers": BOOTSTRAP, "group.id": "bench-latency", "enable.auto.commit": False}
    )
    consumer.assign(end_offsets(KAFKA, sink))
    # Fetching before the clock starts: a new consumer's first second (connections, metadata,
    # offsets) would otherwise count as the worker's latency.
    consumer.poll(1.0)
    latencies: list[float] = []
    producing = threading.Event()
    producing.set()

    def consume() -> None:
        # poll, not consume(n, timeout): that waits for n records or the whole timeout, which
        # added up to 200 ms to every latency below 2,500 records/s
        quiet_since = time.monotonic()
        while producing.is_set() or time.monotonic() - quiet_since < QUIET_S:
            if (message := consumer.poll(0.2)) is not None and message.error() is None:
                quiet_since = time.monotonic()
                latencies.append(time.time() * 1000 - message.timestamp()[1])

    reader = threading.Thread(target=consume)
    reader.start()
    since = len(workers.rss_mb)
    workers.sample_rss()
    # Connected and with the topics' metadata before the clock starts: an idempotent producer's
    # first records wait for its producer id (~1 s), which put 10% of a 10 s phase's
    # latencies near 1 s whatever the worker did. A load generator needs no idempotence.
    producer = make_producer(KAFKA, **{"enable.idempotence": False})
    for topic in (RAW, LABELS):
        producer.list_topics(topic, timeout=10)
    started, raw = time.monotonic(), 0
    while (elapsed := time.monotonic() - started) < seconds:
        topic, key, value, _ = next(records)
        producer.produce(topic, value, key)  # the timestamp is set now: the send time
        producer.poll(0)
        raw += topic == RAW
        if (ahead := raw / rate - elapsed) > PACE_S:
            time.sleep(ahead)
        if raw % max(1, int(rate)) == 0:
            workers.sample_rss()
    producer.flush(30)
    producing.clear()
    reader.join()
    consumer.close()
    return latencies, _rss(workers, since)


def _stage_costs(profile: Path, events: int) -> dict[str, float]:
    """µs per event per stage: py-spy samples (100 per second of a thread) whose stack passes
    through the stage, over the events of the run. py-spy counts threads blocked in C (epoll,
    a thread pool's queue, librdkafka polls) as busy: those are listed as idle."""
    samples: dict[str, int] = {}
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        stage = next(
            (STAGES[key] for frame in reversed(frames) for key in STAGES if key in frame),
            "Faust, aiokafka, event loop",
        )
        samples[stage] = samples.get(stage, 0) + int(count)
    return {stage: count / 100 / events * 1e6 for stage, count in sorted(samples.items())}


def _redis_memory(redis_url: str, namespace: str) -> dict[str, float | None]:
    """MEMORY USAGE of the entities' feature hashes (one per entity and view)."""
    client = redis.Redis.from_url(redis_url)
    try:
        sizes = [
            int(client.memory_usage(key) or 0)
            for key in client.scan_iter(match=f"{namespace}:features:*", count=10_000)
        ]
    finally:
        client.close()
    return {
        "keys": len(sizes),
        "mean_bytes": statistics.fmean(sizes),
        "p99_bytes": _pct(sorted(sizes), 99),
    }


def _metric(url: str, name: str, topic: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=2) as response:  # noqa: S310
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(f'{name}{{topic="{topic}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _rss_mb(pid: int) -> float:
    """The process's resident memory (its children too: py-spy runs the worker as one)."""
    total = 0.0
    for candidate in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _pct(ordered: list[float] | list[int], percent: int) -> float | None:
    if not ordered:
        return None
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))])


def _write(results: dict[str, Any], out: Path) -> None:
    results = {"machine": machine(REDIS_URL), **results}
    path, shown = save_results(results, out, "")
    (REPO / "BENCHMARKS.md").write_text(_markdown(results, shown))
    print(f"wrote {path} and BENCHMARKS.md")


def machine(redis_url: str) -> dict[str, Any]:
    """Where and when the figures were measured, Redis' version read from `redis_url`."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka": os.environ.get("KAFKA_VERSION", "3.9.2"),
        "redis": _redis_version(redis_url),
    }


def save_results(results: dict[str, Any], out: Path, prefix: str) -> tuple[Path, Path]:
    """`out`/<prefix><UTC time>.json; its path, and the path to show (from the repo)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{prefix}{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path, path.relative_to(REPO) if path.is_relative_to(REPO) else path


def _redis_version(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


def _markdown(results: dict[str, Any], source: Path) -> str:
    machine, live = results["machine"], results["live"]
    kafka, faust = (
        results["kafka_passthrough_events_per_s"],
        results["faust_passthrough_events_per_s"],
    )
    rows = [
        ("confluent-kafka consume→produce", kafka),
        ("Faust agent pass-through", faust),
        (
            "batch pass-through (the worker's consumer, agents and producer, no work)",
            results["batch_passthrough_events_per_s"],
        ),
        (
            "in-process hot path (one core, memory stores, no Kafka)",
            results["hotpath_events_per_s"],
        ),
        ("serving worker ² (exactly once, the default)", results["serving_events_per_s"]),
        ("serving worker ², at least once", results["serving_at_least_once_events_per_s"]),
        ("two serving workers ²", results["serving_two_workers_events_per_s"]),
        ("full pipeline, 1 worker that also trains", results["full_pipeline_events_per_s"]),
        ("`streamproc replay` into a new version ³", results["replay_events_per_s"]),
    ]
    labels = results.get("trainer_labels_per_s")
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m benchmarks.pipeline_bench`) on {machine['date']}: "
        f"{machine['cpus']} CPUs shared with the broker and Redis, {machine['platform']}, "
        f"Python {machine['python']}, Kafka {machine['kafka']}, Redis {machine['redis']}. "
        f"Raw figures: `{source}`.",
        "",
        f"Backlog of {results['events']:,} orders and {results['labels']:,} labels, produced "
        "before the readers start; the full pipeline is clean, features, predict and learn.",
        "",
        "| pipeline | events/s | × Kafka pass-through | × Faust pass-through |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {rate:,.0f} | {rate / kafka:.3f} | {rate / faust:.2f} |"
            for name, rate in rows
        ),
        "",
        "Exactly-once delivery (the default: Kafka transactions, committed every "
        f"{results.get('commit_interval_s', 1.0):g} s, once a second while the input is "
        "ahead) "
        f"serves {results['exactly_once_to_at_least_once']:.2f}× the rate of at-least-once "
        "in the same run (goal: ≥ 0.90), the mean of two serving runs of each mode "
        f"(exactly once {_rates(results['exactly_once_runs'])}; at least once "
        f"{_rates(results['at_least_once_runs'])} events/s, in the order EO, ALO, ALO, EO).",
        "",
        "² the workers only serve (`STREAMPROC_TRAINER=false`); one more process only trains "
        "(`STREAMPROC_INFERENCE=false`)"
        + (f": it learned {labels:,.0f} labels/s meanwhile." if labels else "."),
        "",
        "³ the replay's worker (batches of 5,000, fetches of 4 MB, commits once a second, its "
        "trainer in the same process) over the same backlog, into a new version's namespace "
        f"and topics: {results['replay_to_live']:.2f}× the full pipeline at live settings.",
        "",
        f"Serving worker ÷ in-process hot path: {results['serving_to_hotpath']:.2f}.",
        "",
        "Live, one serving worker (and a trainer process) after a 10 s warm-up at 25% of the "
        "serving rate; latency from the producer's send to the prediction consumed (to the "
        "forwarded record for the pass-throughs):",
        "",
        "| load | events/s | predictions | p50 ms | p95 ms | p99 ms | max ms | RSS MB ¹ |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, phase in live.items():
        rss = phase["rss_mb"]
        cells = [
            f"{phase[k]:,.0f}" if phase[k] is not None else "–"
            for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
        ]
        lines.append(
            f"| {name} | {phase['events_per_s']:,.0f} | {phase['predictions']:,} | "
            + " | ".join(cells)
            + f" | {rss['first_tenth_median_mb']:.0f} → {rss['last_tenth_median_mb']:.0f} |"
        )
    memory, rss = results["redis_bytes_per_entity"], results["serving_rss_mb"]
    lines += [
        "",
        "¹ the worker's RSS, median of the first tenth of the samples → of the last tenth.",
        "",
        f"Redis: {memory['keys']:,} feature hashes, MEMORY USAGE mean "
        f"{memory['mean_bytes']:,.0f} B, p99 {memory['p99_bytes']:,.0f} B. Worker RSS in the "
        f"backlog run (1 serving worker): {rss['first_mb']:.0f} → {rss['last_mb']:.0f} MB."
        + (
            f" Soak RSS growth: {results['soak_rss_growth_pct']:+.1f}%."
            if "soak_rss_growth_pct" in results
            else ""
        ),
    ]
    if results["stage_us_per_event"]:
        lines += ["", "Cost per event per stage (py-spy, busy samples over the backlog run):", ""]
        lines += [f"- {stage}: {us:,.0f} µs" for stage, us in results["stage_us_per_event"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
