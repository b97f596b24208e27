"""A tabular pipeline from its YAML alone in the real worker: River's Phishing dataset
streamed live as Avro events, each with its immediate label, is scored (streamproc.Prediction
on its own topic) and learned by the trainer."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets, start_group_at
from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC, forget_models
from streamproc.adapters.kafka.producer import produce_records
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.scenario.river_datasets import keyed, stream
from tests.conftest import REPO
from tests.integration.conftest import Stack, new_group, start_worker, stop_worker

EVENTS, LABELS = "river.phishing.v1", "river.phishing_label.v1"
PREDICTIONS = "river.phishing_prediction.v1"
ROWS = 1_250  # River's Phishing dataset


def test_the_phishing_pipeline_runs_in_the_worker_from_its_yaml(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    group = new_group(stack)
    for topic in (EVENTS, LABELS):  # this run's records only
        start_group_at(stack.kafka, group, end_offsets(stack.kafka, topic))
    start = end_offsets(stack.kafka, PREDICTIONS)
    # snapshots every 50 labels: the served model keeps close to the learning one
    declared = yaml.safe_load((REPO / "pipelines/phishing.yaml").read_text())
    declared["models"]["snapshots"] = {"every_labels": 50, "every": "1s"}
    pipeline = tmp_path / "phishing.yaml"
    pipeline.write_text(yaml.safe_dump(declared))
    worker = start_worker(
        stack,
        group,
        tmp_path,
        STREAMPROC_PIPELINE=str(pipeline),
        STREAMPROC_FOLLOW_INTERVAL_S="0.2",
    )
    try:
        rows = stream("phishing")
        encode_event = functools.partial(serde.encode, EVENTS, "river.Phishing")
        encode_label = functools.partial(serde.encode, LABELS, "river.PhishingLabel")
        live = (  # each label right after its event, as a live source would send them
            (topic, key, value, None)
            for event, label in zip(rows.events, rows.labels, strict=True)
            for topic, (key, value, _) in (
                (EVENTS, next(keyed([event], encode_event))),
                (LABELS, next(keyed([label], encode_label))),
            )
        )
        assert produce_records(stack.kafka, live, per_second=400) == 2 * ROWS
        consumer = Consumer(
            {"bootstrap.servers": stack.bootstrap, "group.id": group, "enable.auto.commit": False}
        )
        consumer.assign(start)
        scores: dict[str, float] = {}
        deadline = time.monotonic() + 120
        while len(scores) < ROWS and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                record = serde.decode(message.value(), "streamproc.Prediction")
                scores[record["event_id"]] = record["probability"]
        consumer.close()
        assert len(scores) == ROWS, worker.log_tail()
        deadline = time.monotonic() + 120
        while worker.counter("streamproc_labels_total", outcome="learned") < 0.95 * ROWS:
            if time.monotonic() > deadline:
                pytest.fail(f"labels not learned:\n{worker.log_tail()}")
            time.sleep(0.5)
        # Learned: untrained it scores 0.5. River's instant progressive AUC is 0.95; served
        # scores come from snapshots a few dozen labels old, which costs most on 1,250 rows.
        auc = worker.counter("streamproc_model_quality", model="logreg", metric="roc_auc")
        assert auc > 0.75
    finally:
        stop_worker(worker)
        delete_namespace(stack.redis_url, group)
        forget_models(SnapshotTopic(stack.kafka, SNAPSHOTS_TOPIC), f"{group}/phishing")
