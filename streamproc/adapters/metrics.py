"""Adapter: every Prometheus metric of the service, with bounded label sets."""

from __future__ import annotations

import hashlib
import platform
import time
from collections import Counter as Counter_
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import NamedTuple

import confluent_kafka
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from streamproc.adapters.kafka.dlq import is_redriven
from streamproc.adapters.kafka.lag import Lags
from streamproc.adapters.kafka.retention import RetentionGap
from streamproc.core.training import ServedX, TrainingReport
from streamproc.records import Envelope, OutRecord, Rejection
from streamproc.stages.clean import CleanOutcome
from streamproc.stages.scored import ScoredOutcome

# Prometheus' text format; the charset (UTF-8) is left to the web server, aiohttp sets it.
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4"
_BATCH_SIZES = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
_DELAY_SECONDS = (60, 600, 3600, 6 * 3600, 86_400, 3 * 86_400, 7 * 86_400, 30 * 86_400)
_BATCH_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# from milliseconds (the latency target) to a day (an order sent hours after it was placed)
_PREDICTION_DELAY_SECONDS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    *(60, 300, 1800, 3600, 6 * 3600, 86_400),
)
# a customer's orders are minutes to weeks apart
_FEATURE_AGE_SECONDS = (1, 10, 60, 600, 3600, 6 * 3600, 86_400, 7 * 86_400, 30 * 86_400)
_REDIS_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


class BuildInfo(NamedTuple):
    """What runs, as the labels of streamproc_build_info."""

    version: str
    python: str
    confluent_kafka: str
    librdkafka: str
    faust: str
    river: str
    pipeline_sha256: str

    @classmethod
    def of(cls, pipeline: bytes) -> BuildInfo:
        """The packages of this process, and the declaration `pipeline` (its bytes) it runs."""
        return cls(
            metadata.version("streamproc"),
            platform.python_version(),
            confluent_kafka.version()[0],
            confluent_kafka.libversion()[0],
            metadata.version("faust-streaming"),
            metadata.version("river"),
            hashlib.sha256(pipeline).hexdigest()[:12],
        )


class StageMetrics:
    """Counts of one worker's stages; labels are topics and reason codes, both finite sets."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.consumed = Counter(
            "streamproc_records_consumed",
            "Records read from an input topic.",
            ["topic"],
            registry=self.registry,
        )
        self.redriven = Counter(
            "streamproc_redriven_records",
            "Records read from an input topic that carry the re-drive marker: dead letters "
            "re-sent by `streamproc dlq redrive` (and what the clean stage made of them).",
            ["topic"],
            registry=self.registry,
        )
        self.produced = Counter(
            "streamproc_records_produced",
            "Records written to an output topic (DLQ records are counted in dead_letters).",
            ["topic"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "streamproc_dead_letters",
            "Records sent to a DLQ, by source topic and reason code.",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "streamproc_duplicates",
            "Events dropped as duplicates, by kind (retry: same id; resubmission: same content).",
            ["kind"],
            registry=self.registry,
        )
        self.quality_flags = Counter(
            "streamproc_quality_flags",
            "Clean events carrying a quality flag (what was assumed or repaired), by flag.",
            ["flag"],
            registry=self.registry,
        )
        self.clean_orders = Counter(
            "streamproc_clean_orders",
            "Clean orders out of the clean stage, per declared source (duplicates and dead "
            "letters are not in it): the denominator of the field rates.",
            ["source"],
            registry=self.registry,
        )
        self.field_status = Counter(
            "streamproc_field_status",
            "Clean orders whose raw field was absent, null, defaulted or invalid (kept, "
            "flagged), per source and declared field.",
            ["source", "field", "status"],
            registry=self.registry,
        )
        self.unit_switches = Counter(
            "streamproc_unit_switch_suspected",
            "Values whose magnitude says their unit is not the declared one.",
            ["source", "field"],
            registry=self.registry,
        )
        self.feature_events = Counter(
            "streamproc_feature_events",
            "Clean events seen by the feature step, by outcome: applied, late (applied or "
            "diverted per the pipeline), replayed (its source position was applied before: a "
            "replay after a crash), no_entity, erased (its entity was erased: dropped).",
            ["outcome"],
            registry=self.registry,
        )
        self.feature_writes = Counter(
            "streamproc_feature_writes",
            "Entity hashes written (one guarded Lua call per batch writes them all).",
            registry=self.registry,
        )
        self.labels = Counter(
            "streamproc_labels",
            "Labels taken by the trainer, by outcome: learned, held (its event not scored yet, "
            "waiting up to the hold time), unjoined (given up: no served x), dead_letter, "
            "sampled_out (not in the pipeline's labels.sample).",
            ["outcome"],
            registry=self.registry,
        )
        self.label_delay = Histogram(
            "streamproc_label_join_delay_seconds",
            "Event time from an order to its label, for the labels learned.",
            buckets=_DELAY_SECONDS,
            registry=self.registry,
        )
        self.prediction_delay = Histogram(
            "streamproc_prediction_delay_seconds",
            "From an order to its prediction acknowledged by Kafka: since its event time "
            "(since=event_time) or since its raw record's Kafka timestamp (kafka_timestamp).",
            ["since"],
            buckets=_PREDICTION_DELAY_SECONDS,
            registry=self.registry,
        )
        self.feature_age = Histogram(
            "streamproc_feature_age_seconds",
            "At serving, event time from the oldest feature view's newest event to the order "
            "served: how far behind the order its features are (entities seen before only).",
            buckets=_FEATURE_AGE_SECONDS,
            registry=self.registry,
        )
        self.model_quality = Gauge(
            "streamproc_model_quality",
            "Each model's prequential quality on the labels learned: roc_auc (rolling), "
            "log_loss, accuracy; published by the trainer.",
            ["model", "metric"],
            registry=self.registry,
        )
        self.serving = Gauge(
            "streamproc_model_serving",
            "1 for the model whose score is served (the champion), 0 for the shadows.",
            ["model"],
            registry=self.registry,
        )
        self.deployment_serving = Gauge(
            "streamproc_deployment_serving",
            "1 while the deployment version this worker runs is the serving one (its "
            "predictions to the serving topic), 0 while it is a shadow (docs/replay.md).",
            ["version"],
            registry=self.registry,
        )
        self.serving_version = Gauge(
            "streamproc_model_version",
            "Version of the snapshot the worker scores with (0: untrained).",
            registry=self.registry,
        )
        self.snapshots = Counter(
            "streamproc_model_snapshots",
            "Snapshots published by this worker's trainer.",
            registry=self.registry,
        )
        self.snapshot_bytes = Gauge(
            "streamproc_model_snapshot_bytes",
            "Size of the last snapshot published.",
            registry=self.registry,
        )
        self.drift = Counter(
            "streamproc_drift_detections",
            "ADWIN detections, on a model's error (kind error) or an input (kind feature).",
            ["kind", "stream"],
            registry=self.registry,
        )
        self.promotions = Counter(
            "streamproc_model_promotions",
            "Challengers promoted to champion by the promotion rule.",
            registry=self.registry,
        )
        self.erased_subjects = Gauge(
            "streamproc_erased_subjects",
            "Erased subjects this worker knows from the erasure topic (their orders are "
            "pseudonymised, their clean records dropped by the feature step).",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "streamproc_batch_size",
            "Records per processed batch.",
            ["topic"],
            buckets=_BATCH_SIZES,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "streamproc_batch_seconds",
            "Wall time to process and send one batch.",
            ["topic"],
            buckets=_BATCH_SECONDS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "streamproc_transaction_commit_seconds",
            "How long the agents were held for a transaction's commit: the batches in "
            "processing finishing, then sending the offsets and committing.",
            buckets=_BATCH_SECONDS,
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "streamproc_consumer_lag",
            "Records between this process's consumer position and the end of the partition "
            "(the last stable offset: read_committed), per assigned partition; from "
            "librdkafka's statistics, every few seconds.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.redis_seconds = Histogram(
            "streamproc_redis_call_seconds",
            "Round trip of each kind of Redis call (a script call or a pipeline for a whole "
            "batch), failed ones included.",
            ["call"],
            buckets=_REDIS_SECONDS,
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "streamproc_redis_errors",
            "Failed Redis calls by kind of call and error: timeout, connection, response.",
            ["call", "error"],
            registry=self.registry,
        )
        self.build_info = Gauge(
            "streamproc_build_info",
            "Always 1; the labels say what runs: streamproc's version, Python's, the Kafka "
            "clients', Faust's, River's, and the first 12 hex digits of the pipeline "
            "declaration's SHA-256.",
            list(BuildInfo._fields),
            registry=self.registry,
        )
        self.outage_active = Gauge(
            "streamproc_outage_active",
            "1 while the worker rides through an outage of a dependency (redis or kafka).",
            ["dependency"],
            registry=self.registry,
        )
        self.outages = Counter(
            "streamproc_outages",
            "Outages of a dependency (redis or kafka) the worker rode through or exited on.",
            ["dependency"],
            registry=self.registry,
        )
        self.redis_state_lost = Counter(
            "streamproc_redis_state_lost",
            "Times this worker found Redis without the deployment's state marker: it was "
            "emptied or replaced (a restart without persistence); the state is degraded.",
            registry=self.registry,
        )
        self.stalled_seconds = Gauge(
            "streamproc_stalled_seconds",
            "How long the oldest batch in processing has taken while Redis and Kafka answer "
            "(0 when none is); past STREAMPROC_STALL_TIMEOUT_S the worker is stalled.",
            registry=self.registry,
        )
        self.retention_gaps = Counter(
            "streamproc_retention_gaps",
            "Partitions found at assignment with a committed offset older than the log's start.",
            ["topic"],
            registry=self.registry,
        )
        self.lost_to_retention = Counter(
            "streamproc_records_lost_to_retention",
            "Records retention deleted before this consumer group read them.",
            ["topic"],
            registry=self.registry,
        )
        self.degraded = Gauge(
            "streamproc_degraded",
            "1 while the deployment's Redis state is known to be incomplete (see the log).",
            registry=self.registry,
        )

    def build(self, info: BuildInfo) -> None:
        self.build_info.labels(*info).set(1)

    def redis_call(self, call: str, seconds: float) -> None:
        self.redis_seconds.labels(call).observe(seconds)

    def redis_error(self, call: str, error: str) -> None:
        self.redis_errors.labels(call, error).inc()

    def lag_reporter(self) -> Callable[[Lags], None]:
        """What one consumer calls with the lag of each partition it holds now; the series
        of the partitions it no longer holds go (another consumer's stay)."""
        reported: set[tuple[str, str]] = set()

        def report(lags: Lags) -> None:
            nonlocal reported
            held = {(topic, str(partition)) for topic, partition in lags}
            for labels in reported - held:
                self.consumer_lag.remove(*labels)
            for (topic, partition), records in lags.items():
                self.consumer_lag.labels(topic, str(partition)).set(records)
            reported = held

        return report

    def retention_gap(self, gap: RetentionGap) -> None:
        """Retention deleted records of `gap.topic` this worker's group never read."""
        self.retention_gaps.labels(gap.topic).inc()
        self.lost_to_retention.labels(gap.topic).inc(gap.lost)

    def outage(self, dependency: str, active: bool) -> None:
        """An outage of `dependency` began (True) or ended."""
        self.outage_active.labels(dependency).set(int(active))
        if active:
            self.outages.labels(dependency).inc()

    def observe_batch(
        self, topic: str, batch: Sequence[Envelope], result: CleanOutcome, seconds: float
    ) -> None:
        self._observe(topic, batch, seconds, result.outputs, result.rejections)
        for kind, count in result.duplicate_kinds.items():
            self.duplicates.labels(kind).inc(count)
        for flag, count in result.flags.items():
            self.quality_flags.labels(flag).inc(count)
        for (source, field), count in result.unit_switches.items():
            self.unit_switches.labels(source, field).inc(count)
        for source, count in result.sources.items():
            self.clean_orders.labels(source).inc(count)
        for (source, field, status), count in result.field_status.items():
            self.field_status.labels(source, field, status).inc(count)

    def observe_features(
        self, topic: str, batch: Sequence[Envelope], scored: ScoredOutcome, seconds: float
    ) -> None:
        """A feature batch, once its predictions are acknowledged (now)."""
        result, predictions = scored.step, scored.predictions
        self._observe(topic, batch, seconds, [*result.diverted, *predictions], result.rejections)
        self._observe_delays(predictions, scored.served)
        features = result.features
        applied = len(features.served) - features.late - features.replayed
        for outcome, count in (
            ("applied", applied),
            ("late", features.late),
            ("replayed", features.replayed),
            ("no_entity", result.without_entity),
            ("erased", result.erased),
        ):
            self.feature_events.labels(outcome).inc(count)
        self.feature_writes.inc(features.writes)

    def _observe_delays(
        self, predictions: Sequence[OutRecord], served: Sequence[tuple[str, ServedX]]
    ) -> None:
        now_s = time.time()
        since_kafka = self.prediction_delay.labels("kafka_timestamp")
        for prediction in predictions:
            if prediction.timestamp_ms is not None:
                since_kafka.observe(now_s - prediction.timestamp_ms / 1000)
        since_event = self.prediction_delay.labels("event_time")
        for _, x in served:
            since_event.observe(now_s - x.occurred_at_ms / 1000)
            if x.features_as_of is not None:
                self.feature_age.observe((x.occurred_at_ms - x.features_as_of) / 1000)

    def _observe(
        self,
        topic: str,
        batch: Sequence[Envelope],
        seconds: float,
        outputs: Sequence[OutRecord],
        rejections: Sequence[Rejection],
    ) -> None:
        """What every batch of every step counts: its size, time, outputs and dead letters."""
        self.consumed.labels(topic).inc(len(batch))
        # Most records have no headers at all: the check costs them one truth test.
        redriven = sum(1 for record in batch if record.headers and is_redriven(record))
        if redriven:
            self.redriven.labels(topic).inc(redriven)
        self.batch_size.labels(topic).observe(len(batch))
        self.batch_seconds.labels(topic).observe(seconds)
        for sink, count in Counter_(output.topic for output in outputs).items():
            self.produced.labels(sink).inc(count)
        for reason, count in Counter_(r.reason for r in rejections).items():
            self.dead_letters.labels(topic, reason).inc(count)

    def observe_training(self, report: TrainingReport, scores: dict[str, dict[str, float]]) -> None:
        for outcome, count in (
            ("learned", report.learned),
            ("held", report.held),
            ("unjoined", report.unjoined),
        ):
            self.labels.labels(outcome).inc(count)
        for delay_ms in report.join_delays_ms:
            self.label_delay.observe(delay_ms / 1000)
        for detected in report.drift:
            self.drift.labels(detected.kind, detected.stream).inc()
        self.promotions.inc(len(report.promotions))
        for model, card in scores.items():
            for metric, value in card.items():
                if metric != "labels":
                    self.model_quality.labels(model, metric).set(value)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
