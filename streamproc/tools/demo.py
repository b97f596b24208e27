"""Tool: the one-command demo: the reference scenario through a real worker, end to end.

Topics are applied, a worker starts in a new consumer group (at the raw topic's end, so
earlier runs do not count) with its own Redis namespace, the generated orders are produced,
and the worker's own metrics say what happened to them: live while it runs when stdout is a
terminal (the view of `streamproc top`), and at the end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streamproc.adapters.kafka.admin import KafkaAdmin, end_offsets, start_group_at
from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC, forget_models
from streamproc.adapters.kafka.producer import produce_all, produce_records
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.adapters.redis.client import redis_client
from streamproc.adapters.redis.stores import RedisFeatureStore
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.config.connections import TlsFiles
from streamproc.config.kafka import KafkaConnection
from streamproc.config.pipeline import Features
from streamproc.config.topics import load_topic_specs, plan_changes
from streamproc.core.features.reader import FeatureReader
from streamproc.errors import InfraError
from streamproc.scenario.shop import Scenario, producer_key
from streamproc.tools.top.live import scrape, watching
from streamproc.tools.top.render import plain_text
from streamproc.tools.top.window import window

Encode = Callable[[Mapping[str, object]], bytes]


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """What one demo run needs: the stack, the topics, its folders and port, and the pace."""

    kafka: KafkaConnection
    raw_topic: str
    clean_topic: str
    topics_dir: Path
    work_dir: Path
    web_port: int
    redis_url: str
    features: Features
    redis_tls: TlsFiles | None = None  # the files of a rediss:// URL
    show_entity: str | None = None  # whose online features to print at the end
    labels_topic: str | None = None  # with models: the labels are produced too, interleaved
    pipeline: str = "shop_orders"  # its name: the demo's models are <group>/<pipeline>
    per_second: float | None = None  # production rate; None: all at once (a backlog)
    timeout_s: float = 300.0


def produce_scenario(kafka: KafkaConnection, topic: str, scenario: Scenario, encode: Encode) -> int:
    """The scenario's raw records, keyed as the shop's producers key them; acked count."""
    records = ((producer_key(event), encode(event), None) for event in scenario.events)
    return produce_all(kafka, topic, records)


def live_records(
    orders: tuple[str, Encode], labels: tuple[str, Encode], scenario: Scenario
) -> Iterator[tuple[str, bytes | None, bytes, None]]:
    """Orders and labels as a live shop sends them: the orders in arrival order, each label
    once the orders have reached its time; (topic, key, value, timestamp) to produce."""
    (order_topic, encode_order), (label_topic, encode_label) = orders, labels
    pending = iter(scenario.outcomes)  # sorted by the time each label becomes known
    label = next(pending, None)
    now = 0
    for event, truth in zip(scenario.events, scenario.truth, strict=True):
        if truth.canonical is not None:
            now = max(now, truth.canonical["occurred_at_ms"])
        while label is not None and label["occurred_at"] <= now:
            yield label_topic, label["event_id"].encode(), encode_label(label), None
            label = next(pending, None)
        yield order_topic, producer_key(event), encode_order(event), None


def run_demo(
    plan: DemoPlan, scenario: Scenario, encode: Encode, encode_label: Encode | None = None
) -> Mapping[str, float]:
    """Runs the worker on the scenario until it has consumed every record (and learned the
    labels that are due); its metrics."""
    specs = load_topic_specs(plan.topics_dir)
    admin = KafkaAdmin(plan.kafka)
    admin.apply(plan_changes(specs, admin.read_state(specs)))
    group = f"streamproc-demo-{int(time.time())}"
    topics = [plan.raw_topic, plan.clean_topic, *([plan.labels_topic] if plan.labels_topic else [])]
    for topic in topics:  # this run's records only
        start_group_at(plan.kafka, group, end_offsets(plan.kafka, topic))
    plan.work_dir.mkdir(parents=True, exist_ok=True)
    log = plan.work_dir / "worker.log"
    env = {
        **os.environ,
        "STREAMPROC_APP_ID": group,
        "STREAMPROC_REDIS_NAMESPACE": group,
        "STREAMPROC_WEB_PORT": str(plan.web_port),
        "STREAMPROC_DATA_DIR": str(plan.work_dir / "state"),
    }
    metrics_url = f"http://127.0.0.1:{plan.web_port}/metrics"
    print(f"worker: consumer group {group}, log {log}")
    with log.open("wb") as out:
        worker = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "streamproc.cli", "worker"], env=env, stdout=out, stderr=out
        )
    try:
        _wait_until_serving(worker, metrics_url, log)
        with _top_view(metrics_url):
            started = time.monotonic()
            if plan.labels_topic and encode_label is not None:
                orders, labels = (plan.raw_topic, encode), (plan.labels_topic, encode_label)
                produce_records(plan.kafka, live_records(orders, labels, scenario), plan.per_second)
                sent = len(scenario.events)
                print(
                    f"produced {sent} orders and {len(scenario.outcomes)} labels (interleaved in "
                    f"event time) in {time.monotonic() - started:.1f} s"
                )
            else:
                sent = produce_scenario(plan.kafka, plan.raw_topic, scenario, encode)
                print(f"produced {sent} orders in {time.monotonic() - started:.1f} s")
            metrics = _wait_until_consumed(worker, metrics_url, plan, sent, log)
            if plan.labels_topic:
                metrics = _wait_until_learned(worker, metrics_url, log)
            elapsed = time.monotonic() - started
            print(f"worker consumed all {sent} in {elapsed:.1f} s ({sent / elapsed:,.0f} events/s)")
        if plan.show_entity and plan.features.views:
            asyncio.run(_show_features(plan, plan.show_entity, f"{group}:features"))
        return metrics
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        # a demo leaves no dedupe keys behind
        delete_namespace(plan.redis_url, group, tls=plan.redis_tls)
        if plan.labels_topic:  # nor models on the snapshot topic
            forget_models(SnapshotTopic(plan.kafka, SNAPSHOTS_TOPIC), f"{group}/{plan.pipeline}")


def summary_lines(metrics: Mapping[str, float], raw_topic: str) -> list[str]:
    """What the operator would read off the dashboard."""
    lines = [f"consumed  {metrics.get(f'consumed|{raw_topic}', 0):>8.0f}"]
    for name in ("produced", "duplicates", "dead_letters", "features", "labels"):
        for key, value in sorted(metrics.items()):
            if key.startswith(f"{name}|"):
                lines.append(f"{name:<13} {key.split('|', 1)[1]:<28} {value:>8.0f}")
    flags = sorted(
        ((v, k.split("|", 1)[1]) for k, v in metrics.items() if k.startswith("flags|")),
        reverse=True,
    )
    lines.extend(f"flag          {flag:<28} {value:>8.0f}" for value, flag in flags)
    models = sorted({key.split("|")[1] for key in metrics if key.startswith("quality|")})
    for model in models:
        auc, loss = metrics[f"quality|{model}|roc_auc"], metrics[f"quality|{model}|log_loss"]
        lines.append(f"model         {model:<28} rolling ROC AUC {auc:.4f}, log loss {loss:.4f}")
    return lines


def truth_mismatches(
    metrics: Mapping[str, float],
    scenario: Scenario,
    clean_topic: str,
    predictions_topic: str | None = None,
) -> list[str]:
    """Where the worker's counts differ from what the ground truth says they must be."""
    kinds = Counter(t.kind for t in scenario.truth)
    expected = {
        f"produced|{clean_topic}": kinds["order"],
        **({f"produced|{predictions_topic}": kinds["order"]} if predictions_topic else {}),
        "duplicates|retry": kinds["retry"],
        "duplicates|resubmission": kinds["resubmission"],
        "dead letters (all reasons)": kinds["invalid"],
    }
    dead = sum(v for k, v in metrics.items() if k.startswith("dead_letters|"))
    found = {**metrics, "dead letters (all reasons)": dead}
    return [
        f"{name}: the truth says {count}, the worker counted {found.get(name, 0):.0f}"
        for name, count in expected.items()
        if found.get(name, 0) != count
    ]


async def _show_features(plan: DemoPlan, entity: str, namespace: str) -> None:
    """An entity's features as the read path serves them, at its newest order."""
    client = redis_client(plan.redis_url, tls=plan.redis_tls)
    try:
        reader = FeatureReader(plan.features, RedisFeatureStore(client, namespace))
        features = await reader.get(entity, wall_ms=int(time.time() * 1000))
    finally:
        await client.aclose()
    print(f"online features of {entity} (streamproc features get {entity}):")
    for name, feature in features.items():
        value = f"{feature.value:.2f}" if isinstance(feature.value, float) else feature.value
        print(f"  {name:<24} {value!s:>12}  {feature.status}")


@contextmanager
def _top_view(url: str) -> Iterator[None]:
    """`streamproc top` on the worker while the body runs: live in a terminal; otherwise,
    once the body is done, its view of the whole run as plain text."""
    if sys.stdout.isatty():
        with watching([url], interval_s=1.0):
            yield
        return
    start = scrape(url)
    yield
    print("the worker's metrics over the whole run, in the view of `streamproc top`:")
    print(plain_text(window({url: start}, {url: scrape(url)})), end="\n\n")


def _wait_until_serving(worker: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        _check_alive(worker, log)
        try:
            _scrape(url)
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise InfraError(f"the worker did not serve {url} within 60 s; see {log}") from exc
            time.sleep(0.3)


def _wait_until_consumed(
    worker: subprocess.Popen[bytes], url: str, plan: DemoPlan, expected: int, log: Path
) -> dict[str, float]:
    deadline = time.monotonic() + plan.timeout_s
    shown = -1
    while True:
        _check_alive(worker, log)
        metrics = _scrape(url)
        consumed = int(metrics.get(f"consumed|{plan.raw_topic}", 0))
        clean_sent = metrics.get(f"produced|{plan.clean_topic}", 0)
        features_done = metrics.get(f"consumed|{plan.clean_topic}", 0) >= clean_sent
        if consumed >= expected and features_done:  # the feature step has caught up too
            return metrics
        if consumed // 5000 != shown // 5000:
            print(f"  … {consumed}/{expected} consumed")
            shown = consumed
        if time.monotonic() > deadline:
            raise InfraError(f"only {consumed} of {expected} consumed in {plan.timeout_s:.0f} s")
        time.sleep(0.5)


def _wait_until_learned(
    worker: subprocess.Popen[bytes], url: str, log: Path, quiet_s: float = 4.0
) -> dict[str, float]:
    """Until the trainer has taken no label for `quiet_s` (the due ones are learned)."""
    deadline = time.monotonic() + 120
    last, quiet_since = -1.0, time.monotonic()
    while True:
        _check_alive(worker, log)
        metrics = _scrape(url)
        taken = sum(v for k, v in metrics.items() if k.startswith("labels|"))
        if taken != last:
            last, quiet_since = taken, time.monotonic()
        if time.monotonic() - quiet_since >= quiet_s or time.monotonic() > deadline:
            return metrics
        time.sleep(0.5)


def _check_alive(worker: subprocess.Popen[bytes], log: Path) -> None:
    if worker.poll() is not None:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise InfraError(f"the worker exited with {worker.returncode}:\n{tail}")


_SERIES = {
    "streamproc_records_consumed_total": ("consumed", "topic"),
    "streamproc_records_produced_total": ("produced", "topic"),
    "streamproc_duplicates_total": ("duplicates", "kind"),
    "streamproc_dead_letters_total": ("dead_letters", "reason"),
    "streamproc_quality_flags_total": ("flags", "flag"),
    "streamproc_feature_events_total": ("features", "outcome"),
    "streamproc_labels_total": ("labels", "outcome"),
    "streamproc_model_quality": ("quality", "model", "metric"),
}


def _scrape(url: str) -> dict[str, float]:
    """The counters the summary shows, as 'name|label' → value."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our loopback URL
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series = _SERIES.get(sample.name)
            if series is not None:
                name, *labels = series
                values["|".join([name, *(sample.labels[label] for label in labels)])] = sample.value
    return values
