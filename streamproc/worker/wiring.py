"""Worker: what a worker is made of, built from the settings: the scored stream and its topics,
the clean stage, the learning parts, the stores and models behind them. No Faust here: the app
(worker.app) and the trainer-only process (worker.main) take these parts and run them.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamproc.adapters.avro.registry import make_registry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde, SchemaRegistry
from streamproc.adapters.health import address_family
from streamproc.adapters.kafka.admin import TopicLister, committed_metadata
from streamproc.adapters.kafka.dlq import dlq_topic
from streamproc.adapters.kafka.erasures import ERASURES_TOPIC, ErasureTopic
from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC, model_scope
from streamproc.adapters.kafka.producer import BatchSender
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.adapters.metrics import BuildInfo, StageMetrics
from streamproc.adapters.outage import Outages
from streamproc.adapters.redis.calls import observe_redis_calls
from streamproc.adapters.redis.client import AnyRedis, redis_client
from streamproc.adapters.redis.marker import RedisStateMarker
from streamproc.adapters.redis.served import RedisServedLog
from streamproc.adapters.redis.serving import RedisServingPointer, RedisVersions
from streamproc.adapters.redis.stores import (
    RedisFeatureStore,
    RedisLease,
    RedisSeenStore,
    features_namespace,
    pipeline_namespace,
)
from streamproc.adapters.redis.units import RedisUnitStatsStore
from streamproc.config.connections import redact_url
from streamproc.config.deployment import Deployment, shadow_topic
from streamproc.config.models import Models
from streamproc.config.pipeline import Features, PipelineSpec
from streamproc.config.settings import Settings
from streamproc.config.tabular import TabularSpec, load_declaration, load_tabular
from streamproc.core.erasure import Erasures
from streamproc.core.features.stage import FeatureStage
from streamproc.errors import ConfigError
from streamproc.stages.clean import CleanStage
from streamproc.stages.feature_step import (
    CLEAN_ORDER,
    FeatureStep,
    RecordShape,
    divert_topic,
    late_topic,
)
from streamproc.stages.predict import PredictStep
from streamproc.stages.scored import ScoredChain
from streamproc.stages.serving_route import ServingRoute
from streamproc.worker.erasures import ErasureFollower
from streamproc.worker.follower import SnapshotFollower
from streamproc.worker.retirement import Retirement
from streamproc.worker.state import WorkerState
from streamproc.worker.trainer import MODEL_EVENTS_TOPIC, TrainerLoop


@dataclass(frozen=True, slots=True)
class ScoredStream:
    """What the feature-and-predict agent reads: the shop's clean orders, or a tabular
    pipeline's source records as they are; the topics the worker needs, and the renames of
    its outputs to the deployment version's topics (the sender applies them)."""

    name: str
    topic: str
    schema_name: str
    shape: RecordShape
    late_topic: str | None
    features: Features
    models: Models | None
    topics: tuple[str, ...]
    renames: dict[str, str]


def scored_stream(
    settings: Settings, catalog: SchemaCatalog
) -> tuple[ScoredStream, PipelineSpec | None]:
    """The declaration's scored stream, and the shop spec when there is a clean stage."""
    deployment = settings.deployment()
    declared = load_declaration(settings.pipeline)
    if isinstance(declared, TabularSpec):
        spec, models = load_tabular(settings.pipeline, lambda n: catalog.latest(n).definition)
        if spec.time is None:
            raise ConfigError(
                f"{settings.pipeline}: time: the worker needs an event-time field (epoch ms) "
                "to learn delayed labels in order; name one, or use run-file"
            )
        shape = RecordShape(spec.event_id, spec.time, spec.entity_key, "probability")
        inputs: tuple[str, ...] = (spec.source.topic, ERASURES_TOPIC)
        outputs: tuple[str, ...] = (dlq_topic(spec.source.topic),)
        scored_topic, schema_name, late = spec.source.topic, spec.source.schema_name, None
        name, features = spec.name, spec.features
    else:
        models = declared.models
        inputs = (declared.source.topic, ERASURES_TOPIC)
        outputs = (
            declared.sink.topic,
            declared.duplicates.topic,
            dlq_topic(declared.source.topic),
            dlq_topic(declared.sink.topic),
            late_topic(declared.sink.topic),
        )
        scored_topic, shape = deployment.topic(declared.sink.topic), CLEAN_ORDER
        schema_name, late = declared.sink.schema_name, divert_topic(declared)
        name, features = declared.name, declared.features
    if models is not None:
        inputs += (models.labels.topic, SNAPSHOTS_TOPIC)
        outputs += (dlq_topic(models.labels.topic), MODEL_EVENTS_TOPIC)
    stream = ScoredStream(
        name,
        scored_topic,
        schema_name,
        shape,
        late,
        features,
        models,
        (*inputs, *map(deployment.topic, outputs), *_prediction_topics(models, deployment)),
        deployment.renames(outputs),
    )
    return stream, None if isinstance(declared, TabularSpec) else declared


def _prediction_topics(models: Models | None, deployment: Deployment) -> tuple[str, ...]:
    """The serving predictions topic, and this version's own while it does not serve (v1
    has its own only once another version was promoted: `promote` creates it)."""
    if models is None:
        return ()
    main = models.predictions.topic
    return (main,) if deployment.is_base else (main, shadow_topic(main, deployment.version))


def require_web_port(host: str, port: int) -> None:
    """Raise ConfigError when (host, port) cannot be bound: another process has the port (two
    workers on one machine need a port each), or the host is not this machine's."""
    with socket.socket(address_family(host, port), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"STREAMPROC_WEB_HOST={host} STREAMPROC_WEB_PORT={port}: cannot serve /metrics "
                f"there ({exc.strerror}); give each process on this machine its own "
                "STREAMPROC_WEB_PORT"
            ) from exc


def require_topics(admin: TopicLister, names: Sequence[str]) -> None:
    """Raise ConfigError naming every topic in `names` that the cluster lacks."""
    missing = sorted(set(names) - set(admin.list_topic_names()))
    if missing:
        raise ConfigError(
            f"topics missing in Kafka: {', '.join(missing)}; "
            "create them with `streamproc topics apply` (declared in topics/*.yaml)"
        )


@dataclass(frozen=True, slots=True)
class Learning:
    """What a pipeline with models runs besides its agents: scoring with the served models,
    following the snapshot topic, and the trainer (when this process may train)."""

    predict_step: PredictStep
    served_log: RedisServedLog
    follower: SnapshotFollower
    trainer: TrainerLoop
    outages: Outages  # the follower's and the trainer's

    def not_ready(self) -> list[str]:
        """Why a trainer-only process is not ready: Redis or Kafka out, models not read."""
        reasons = [
            f"{name} unavailable for {s:.0f} s" for name, s in self.outages.current().items()
        ]
        if not self.follower.ready.is_set():
            reasons.append("the served models not read from the snapshot topic yet")
        return reasons


@dataclass(frozen=True, slots=True)
class WorkerParts:
    """What a worker's agents run: the clean stage (a shop pipeline only), the chain of the
    scored topic, the learning parts (a pipeline with models only), and what they share: the
    sender, the metrics, and the follower of the erasures both stages consult."""

    scored: ScoredStream
    clean: CleanStage | None
    chain: ScoredChain
    learning: Learning | None
    sender: BatchSender
    metrics: StageMetrics
    state: WorkerState
    erasures: ErasureFollower
    retirement: Retirement  # of the version served before this one, once its grace is over


def process_metrics(settings: Settings) -> StageMetrics:
    """The metrics of this process: what it runs (build info), and its Redis calls timed."""
    metrics = StageMetrics()
    metrics.build(BuildInfo.of(settings.pipeline.read_bytes()))
    observe_redis_calls(metrics)
    return metrics


def worker_parts(settings: Settings) -> WorkerParts:
    """The parts of a worker wired from `settings`; nothing connects until they run."""
    catalog = SchemaCatalog.load(settings.schemas_dir)
    scored, shop = scored_stream(settings, catalog)
    serde = AvroSerde(catalog, schema_registry(settings, catalog))
    redis = redis_client(
        settings.redis_url, settings.redis_cluster, settings.redis_tls(), settings.redis_timeout_s
    )
    metrics = process_metrics(settings)
    sender = batch_sender(settings, scored.renames)
    feature_store = RedisFeatureStore(redis, features_namespace(settings.deployment().namespace))
    erased: set[str] = set()  # filled by the follower; the stages only ask it
    erasures = Erasures(settings.pii_key.get_secret_value().encode(), erased)
    # The predict step is the served vector's only reader here: serve what x is built from
    # (the whole vector stays available from the read path).
    consumed = scored.models.inputs.names() if scored.models else frozenset()
    feature_step = FeatureStep(
        serde,
        FeatureStage(
            scored.features, feature_store, settings.feature_cache_entities, serve=consumed
        ),
        scored.schema_name,
        scored.shape,
        scored.late_topic,
        erasures,
    )
    learning = build_learning(settings, scored, serde, redis, metrics)
    deployment = settings.deployment()
    pointer = RedisServingPointer(redis, deployment.base_namespace)
    chain = ScoredChain(
        feature_step,
        learning.predict_step if learning else None,
        learning.served_log if learning else None,
        route=_serving_route(pointer, deployment, scored.models, metrics),
    )
    clean = _clean_stage(settings, shop, serde, redis, erasures) if shop is not None else None
    follower = ErasureFollower(
        ErasureTopic.connect(settings.kafka_connection()),
        erased,
        metrics,
        Outages(settings.outage_budget_s, metrics),
    )
    inputs = [scored.topic] if shop is None else [shop.source.topic, scored.topic]
    before_serving = [("erasures not yet read from their topic", follower.ready)]
    if learning is not None:
        before_serving.append(
            ("models not yet restored from the snapshot topic", learning.follower.ready)
        )
    state = WorkerState(
        Outages(settings.outage_budget_s, metrics),
        metrics,
        RedisStateMarker(redis, settings.deployment().namespace),
        lambda: committed_metadata(
            settings.kafka_connection(), settings.deployment().group, inputs
        ),
        before_serving,
    )
    retirement = Retirement(
        pointer, RedisVersions(redis, deployment.base_namespace), deployment.version
    )
    return WorkerParts(scored, clean, chain, learning, sender, metrics, state, follower, retirement)


def _serving_route(
    pointer: RedisServingPointer,
    deployment: Deployment,
    models: Models | None,
    metrics: StageMetrics,
) -> ServingRoute | None:
    if models is None:
        return None
    main, version = models.predictions.topic, deployment.version
    gauge = metrics.deployment_serving.labels(version)
    return ServingRoute(
        pointer, version, main, shadow_topic(main, version), lambda serves: gauge.set(int(serves))
    )


def _clean_stage(
    settings: Settings, shop: PipelineSpec, serde: AvroSerde, redis: AnyRedis, erasures: Erasures
) -> CleanStage:
    """The clean stage of the shop pipeline, its state in the deployment's Redis namespace."""
    namespace = pipeline_namespace(settings.deployment().namespace, shop.name)
    seen = RedisSeenStore(redis, namespace)
    units = RedisUnitStatsStore(redis, namespace)
    pii_key = settings.pii_key.get_secret_value().encode()
    return CleanStage(shop, serde, seen, units, pii_key, erasures=erasures)


def build_learning(
    settings: Settings,
    scored: ScoredStream,
    serde: AvroSerde,
    redis: Any,
    metrics: StageMetrics,
) -> Learning | None:
    """The learning parts of a pipeline with models; None for a pipeline without."""
    if scored.models is None:
        return None
    predict_step = PredictStep(scored.models, serde, scored.shape)
    served_log = RedisServedLog(
        redis, pipeline_namespace(settings.deployment().namespace, scored.name)
    )
    scope = model_scope(settings.deployment().group, scored.name)
    snapshots = SnapshotTopic(settings.kafka_connection(), SNAPSHOTS_TOPIC)
    # Outages of their own: a trainer or a follower retrying does not pause the consumer.
    outages = Outages(settings.outage_budget_s, metrics)
    follower = SnapshotFollower(scope, snapshots, predict_step, metrics, outages)
    trainer = TrainerLoop(
        scope,
        predict_step,
        serde,
        settings.kafka_connection(),
        settings.deployment().group,
        served_log,
        RedisLease(redis, settings.deployment().namespace, scope, _worker_id(settings)),
        follower,
        metrics,
        lease_ms=int(settings.trainer_lease_s * 1000),
        batch_size=settings.batch_size,
        outages=outages,
        renames=scored.renames,
        scored_topic=scored.topic,
    )
    return Learning(predict_step, served_log, follower, trainer, outages)


def connections_summary(settings: Settings) -> str:
    """Where the worker reads and keeps its state, for its start-up log line; the Redis
    URL's password shows as ***."""
    tls = settings.redis_tls()
    if tls is None:
        security = "plaintext"
    else:
        client = ", client certificate" if tls.cert else ""
        security = f"TLS, CA {tls.ca or 'of the system'}{client}"
    kafka: str = settings.kafka_security_protocol
    if kafka == "SASL_SSL":
        kafka += f", {settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username}"
    return (
        f"Kafka at {settings.kafka_bootstrap} ({kafka}); Redis at "
        f"{redact_url(settings.redis_url)} ({security}), keys under "
        f"{settings.deployment().namespace}: (version {settings.version})"
    )


def delivery_summary(settings: Settings) -> str:
    """The delivery guarantee in force, what it covers and what it does not: the start-up
    log line an operator reads before trusting the outputs."""
    state = (
        "Redis state effectively once (each write guarded by its source offset: a record "
        "read again changes nothing)"
    )
    if settings.delivery == "exactly-once":
        return (
            "delivery exactly once (STREAMPROC_DELIVERY=exactly-once): the Kafka outputs (clean "
            "orders, duplicate audits, predictions, dead letters) are committed in one "
            "transaction with the input offsets, for readers with isolation.level="
            f"read_committed; {state}. Not covered: readers that read uncommitted records, and "
            "any effect outside Kafka and Redis"
        )
    return (
        "delivery at least once (STREAMPROC_DELIVERY=at-least-once): after a crash or a "
        "rebalance the Kafka outputs since the last commit are sent again (readers drop "
        f"repeats by event_id); {state}. Not covered: any effect outside Kafka and Redis"
    )


def schema_registry(settings: Settings, catalog: SchemaCatalog) -> SchemaRegistry:
    """The schema registry the settings name (embedded, or Confluent-compatible)."""
    return make_registry(
        catalog,
        settings.schema_registry_url,
        settings.schema_registry_secret(),
        settings.schema_registry_ca(),
    )


def _worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}:{settings.web_port}"


def batch_sender(settings: Settings, renames: dict[str, str]) -> BatchSender:
    """The agents' sender: transactional with exactly-once delivery, to the version's topics."""
    return BatchSender(
        settings.kafka_connection(),
        renames=renames,
        linger_ms=settings.produce_linger_ms,
        transactional_id=_transactional_id(settings),
        transaction_timeout_s=settings.transaction_timeout_s,
    )


def _transactional_id(settings: Settings) -> str | None:
    """The worker's transactional.id with exactly-once delivery (None: at least once). Stable
    across restarts of one worker, so the restarted one fences its predecessor and aborts the
    transaction it left open at once, instead of readers waiting for its timeout."""
    if settings.delivery != "exactly-once":
        return None
    return f"{settings.deployment().group}.{_worker_id(settings)}"
