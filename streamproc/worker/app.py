"""Worker: the Faust app and its agents: take a batch, run the processor, send; nothing else."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

import faust
import mode.loop
from faust.app.base import BootStrategy

from streamproc.adapters.avro.registry import make_registry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde, SchemaRegistry
from streamproc.adapters.health import (
    HEALTH_CONTENT_TYPE,
    Liveness,
    serve_health_and_metrics,
)
from streamproc.adapters.kafka.admin import KafkaAdmin, TopicLister
from streamproc.adapters.kafka.batch_flow import BatchFlow, Complete, Process
from streamproc.adapters.kafka.delivery import Delivery, delivered
from streamproc.adapters.kafka.dlq import dlq_topic
from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC, model_scope
from streamproc.adapters.kafka.positions import FetchedBatch, Positions
from streamproc.adapters.kafka.producer import BatchSender
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.adapters.kafka.source import BatchConsumer, SourceSettings
from streamproc.adapters.metrics import EXPOSITION_CONTENT_TYPE, StageMetrics
from streamproc.adapters.redis.stores import (
    AnyRedis,
    RedisFeatureStore,
    RedisLease,
    RedisSeenStore,
    RedisServedLog,
    redis_client,
)
from streamproc.adapters.redis.units import RedisUnitStatsStore
from streamproc.config.models import Models
from streamproc.config.pipeline import Features, PipelineSpec
from streamproc.config.settings import DEV_PII_KEY, Settings
from streamproc.config.tabular import TabularSpec, load_declaration, load_tabular
from streamproc.core.features.stage import FeatureStage
from streamproc.errors import ConfigError, InfraError
from streamproc.records import Envelope
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
from streamproc.worker.follower import SnapshotFollower
from streamproc.worker.trainer import MODEL_EVENTS_TOPIC, TrainerLoop

log = logging.getLogger(__name__)

EXIT_INFRA = 3  # a supervisor restarts the worker; it resumes from the last committed offset


@dataclass(frozen=True, slots=True)
class ScoredStream:
    """What the feature-and-predict agent reads: the shop's clean orders, or a tabular
    pipeline's source records as they are; and the topics the worker needs."""

    name: str
    topic: str
    schema_name: str
    shape: RecordShape
    late_topic: str | None
    features: Features
    models: Models | None
    topics: tuple[str, ...]


def scored_stream(
    settings: Settings, catalog: SchemaCatalog
) -> tuple[ScoredStream, PipelineSpec | None]:
    """The declaration's scored stream, and the shop spec when there is a clean stage."""
    declared = load_declaration(settings.pipeline)
    if isinstance(declared, TabularSpec):
        spec, models = load_tabular(settings.pipeline, lambda n: catalog.latest(n).definition)
        if spec.time is None:
            raise ConfigError(
                f"{settings.pipeline}: time: the worker needs an event-time field (epoch ms) "
                "to learn delayed labels in order; name one, or use run-file"
            )
        shape = RecordShape(spec.event_id, spec.time, spec.entity_key, "probability")
        source_topics = (spec.source.topic, dlq_topic(spec.source.topic))
        stream = ScoredStream(
            spec.name,
            spec.source.topic,
            spec.source.schema_name,
            shape,
            None,
            spec.features,
            models,
            (*source_topics, *_model_topics(models)),
        )
        return stream, None
    topics = (
        declared.source.topic,
        declared.sink.topic,
        declared.duplicates.topic,
        dlq_topic(declared.source.topic),
        dlq_topic(declared.sink.topic),
        late_topic(declared.sink.topic),
    )
    stream = ScoredStream(
        declared.name,
        declared.sink.topic,
        declared.sink.schema_name,
        CLEAN_ORDER,
        divert_topic(declared),
        declared.features,
        declared.models,
        (*topics, *_model_topics(declared.models)),
    )
    return stream, declared


def _model_topics(models: Models | None) -> tuple[str, ...]:
    if models is None:
        return ()
    labels = models.labels.topic
    return (
        labels,
        dlq_topic(labels),
        models.predictions.topic,
        SNAPSHOTS_TOPIC,
        MODEL_EVENTS_TOPIC,
    )


class _WithoutKafka(BootStrategy):
    """Faust's agents, tasks and web server, without its Kafka layer: the worker's own
    consumer and producer (librdkafka) move whole batches (see adapters/kafka_source.py)."""

    enable_kafka = False


class WorkerApp(faust.App):
    """A Faust app whose Kafka layer is off: the worker's own consumer feeds its agents."""

    BootStrategy = _WithoutKafka


def worker_app(settings: Settings) -> faust.App:
    """The Faust app of a worker, without its Kafka layer; agents come from serve_batches."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    return WorkerApp(
        settings.app_id,
        store="memory://",  # features live in Redis, never in Faust tables (docs/architecture.md)
        datadir=str(settings.data_dir / settings.app_id),
        web_port=settings.web_port,
        web_host=settings.web_host,
    )


def serve_batches(
    app: faust.App,
    settings: Settings,
    flows: Mapping[str, Process],
    ready: asyncio.Event | None = None,
) -> None:
    """One consumer (of the group settings.app_id) for the topics of `flows`, and per topic
    an agent that processes its batches with the topic's flow. With `ready`, the consumer
    joins the group once it is set."""
    positions = Positions()
    source = SourceSettings(
        settings.kafka_bootstrap,
        settings.app_id,
        tuple(flows),
        batch_size=settings.batch_size,
        batches_in_flight=settings.batches_in_flight,
        commit_interval_s=settings.commit_interval_s,
        session_timeout_s=settings.session_timeout_s,
        fetch_wait_ms=settings.fetch_wait_ms,
        fetch_min_bytes=settings.fetch_min_bytes,
    )
    channels = batch_agents(app, flows, positions, settings.batches_in_flight)
    _intake(app, source, positions, channels, ready)


def batch_agents(
    app: faust.App, flows: Mapping[str, Process], positions: Positions, in_flight: int
) -> dict[str, Any]:
    """Per topic of `flows`, a channel and an agent walking the batches handed onto it with
    the topic's flow (a failure stops the process: _die); returns the channels."""
    # room for every batch the consumer may have queued (one per topic): a hand-over never waits
    channels = {topic: app.channel(maxsize=len(flows) + 1) for topic in flows}
    for topic, process in flows.items():
        flow = BatchFlow(positions, process, in_flight, _die)
        _agent(app, channels[topic], f"batches_of_{topic}", flow)
    return channels


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired from `settings`; nothing connects until a worker starts it."""
    catalog = SchemaCatalog.load(settings.schemas_dir)
    scored, shop = scored_stream(settings, catalog)
    serde = AvroSerde(catalog, _registry(settings, catalog))
    redis = redis_client(settings.redis_url, settings.redis_cluster)
    metrics = StageMetrics()
    sender = BatchSender(settings.kafka_bootstrap, linger_ms=settings.produce_linger_ms)
    app = worker_app(settings)
    feature_store = RedisFeatureStore(redis, f"{settings.redis_namespace}:features")
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
    )
    learning = _learning(settings, scored, serde, redis, metrics)
    flows: dict[str, Process] = {}

    chain = ScoredChain(
        feature_step,
        learning.predict_step if learning else None,
        learning.served_log if learning else None,
    )

    if shop is not None:
        stage = _clean_stage(settings, shop, serde, redis)
        flows[shop.source.topic] = clean_flow(stage, sender, metrics, shop.source.topic)
    if scored.features.views or learning is not None:
        # The scored topic is keyed by entity: one worker owns an entity's partition, so one
        # writer updates its features; a zombie's write is refused (OffsetConflict).
        flows[scored.topic] = scored_flow(chain, sender, metrics, scored.topic)

    # A restarted worker scores with its restored models: it reads no topic before them (a
    # batch waiting for them inside an agent held up the other topics' batches as well).
    serve_batches(app, settings, flows, learning.follower.ready if learning else None)

    if learning is not None:
        _learning_tasks(app, settings, learning)
    _pages(app, metrics)
    return app


def _clean_stage(
    settings: Settings, shop: PipelineSpec, serde: AvroSerde, redis: AnyRedis
) -> CleanStage:
    """The clean stage of the shop pipeline, its state in the deployment's Redis namespace."""
    seen = RedisSeenStore(redis, f"{settings.redis_namespace}:{shop.name}")
    units = RedisUnitStatsStore(redis, f"{settings.redis_namespace}:{shop.name}")
    return CleanStage(shop, serde, seen, units, settings.pii_key.get_secret_value().encode())


def _learning_tasks(app: faust.App, settings: Settings, learning: Learning) -> None:
    """The snapshot follower, and the trainer where this worker may train, as app tasks."""

    @app.task  # type: ignore[untyped-decorator]
    async def follow_snapshots() -> None:
        try:
            await learning.follower.follow(settings.follow_interval_s)
        except Exception as exc:
            _die(exc)

    if settings.trainer:

        @app.task  # type: ignore[untyped-decorator]
        async def train() -> None:
            try:
                await learning.trainer.run()
            except Exception as exc:
                _die(exc)


def _pages(app: faust.App, metrics: StageMetrics) -> None:
    """/metrics and /healthz on the app's web server."""
    liveness = Liveness("worker")

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(metrics.exposition(), content_type=EXPOSITION_CONTENT_TYPE)

    @app.page("/healthz")
    async def health_page(web: Any, request: Any) -> Any:
        return web.bytes(liveness.body(), content_type=HEALTH_CONTENT_TYPE)


def clean_flow(
    stage: CleanStage, sender: BatchSender, metrics: StageMetrics, topic: str
) -> Process:
    """A raw topic's flow: clean a batch, hand its outputs to `sender`; the completion waits
    for their acks and counts the batch (less what Kafka refused, dead-lettered instead)."""

    async def clean_batch(batch: list[Envelope]) -> Complete:
        started = time.perf_counter()
        result = await stage.process(batch)
        sending = await Delivery.start(
            sender, batch, result.outputs, result.rejections, positions=True
        )

        async def complete() -> None:
            refused = await sending.refused()
            if refused:
                result.clean, result.duplicates = delivered(
                    refused, result.clean, result.duplicates
                )
                result.rejections.extend(refused.values())
            seconds = time.perf_counter() - started
            metrics.observe_batch(topic, len(batch), result, seconds)

        return complete

    return clean_batch


def scored_flow(
    chain: ScoredChain, sender: BatchSender, metrics: StageMetrics, topic: str
) -> Process:
    """The scored topic's flow: features and predictions of a batch, handed to `sender`; the
    completion waits for their acks and counts the batch."""

    async def feature_batch(batch: list[Envelope]) -> Complete:
        started = time.perf_counter()
        result = await chain.process(batch)
        sending = await Delivery.start(
            sender, batch, result.outputs(), result.rejections, positions=False
        )

        async def complete() -> None:
            refused = await sending.refused()
            step = result.step
            if refused:
                step.diverted, result.predictions = delivered(
                    refused, step.diverted, result.predictions
                )
                step.rejections.extend(refused.values())
            seconds = time.perf_counter() - started
            metrics.observe_features(topic, len(batch), step, result.predictions, seconds)

        return complete

    return feature_batch


def _agent(app: faust.App, channel: Any, name: str, flow: BatchFlow) -> None:
    """A Faust agent whose stream items are whole fetched batches."""

    async def walk(stream: Any) -> None:
        await flow.run(stream)

    walk.__name__ = walk.__qualname__ = name  # how Faust's logs name the agent
    app.agent(channel, name=name)(walk)


def _intake(
    app: faust.App,
    source: SourceSettings,
    positions: Positions,
    channels: Mapping[str, Any],
    ready: asyncio.Event | None,
) -> None:
    """Run the consumer in a thread of its own while the app runs, handing each batch onto
    its topic's channel; on shutdown, before the agents stop, let it finish the batches begun
    and commit them (a SIGTERM loses nothing and repeats nothing)."""
    thread = ThreadPoolExecutor(1, thread_name_prefix="streamproc-consumer")
    running: list[tuple[BatchConsumer, asyncio.Future[None]]] = []

    @app.task  # type: ignore[untyped-decorator]
    async def consume() -> None:
        loop = asyncio.get_running_loop()
        app.flow_control.resume()  # Faust resumes it in its Kafka layer, which is off
        if ready is not None:
            await ready.wait()

        def hand_over(batch: FetchedBatch) -> None:  # in the consumer's thread
            sending = channels[batch.topic].send(value=batch)
            asyncio.run_coroutine_threadsafe(sending, loop).result()

        consumer = BatchConsumer(source, positions, hand_over)
        running.append((consumer, loop.run_in_executor(thread, consumer.run)))
        try:
            await running[0][1]
        except Exception as exc:
            _die(exc)

    async def finish_batches(*_: Any, **__: Any) -> None:
        for consumer, done in running:
            consumer.stop()
            await asyncio.shield(done)

    app.on_before_shutdown.connect(finish_batches)


@dataclass(frozen=True, slots=True)
class Learning:
    """What a pipeline with models runs besides its agents: scoring with the served models,
    following the snapshot topic, and the trainer (when this process may train)."""

    predict_step: PredictStep
    served_log: RedisServedLog
    follower: SnapshotFollower
    trainer: TrainerLoop


def _learning(
    settings: Settings,
    scored: ScoredStream,
    serde: AvroSerde,
    redis: Any,
    metrics: StageMetrics,
) -> Learning | None:
    if scored.models is None:
        return None
    predict_step = PredictStep(scored.models, serde, scored.shape)
    served_log = RedisServedLog(redis, f"{settings.redis_namespace}:{scored.name}")
    scope = model_scope(settings.app_id, scored.name)
    snapshots = SnapshotTopic(settings.kafka_bootstrap, SNAPSHOTS_TOPIC)
    follower = SnapshotFollower(scope, snapshots, predict_step, metrics)
    trainer = TrainerLoop(
        scope,
        predict_step,
        serde,
        settings.kafka_bootstrap,
        settings.app_id,
        served_log,
        RedisLease(redis, settings.redis_namespace, scope, _worker_id(settings)),
        follower,
        metrics,
        lease_ms=int(settings.trainer_lease_s * 1000),
        batch_size=settings.batch_size,
    )
    return Learning(predict_step, served_log, follower, trainer)


def run_trainer(settings: Settings, catalog: SchemaCatalog, scored: ScoredStream) -> None:
    """A process that only trains (STREAMPROC_INFERENCE=false): the trainer loop and the
    snapshot follower, /metrics and /healthz on the web port, no Faust agents and no consumer
    group."""
    serde = AvroSerde(catalog, _registry(settings, catalog))
    redis = redis_client(settings.redis_url, settings.redis_cluster)
    metrics = StageMetrics()
    learning = _learning(settings, scored, serde, redis, metrics)
    if learning is None:
        raise ConfigError(
            f"{settings.pipeline}: models: STREAMPROC_INFERENCE=false runs only a trainer, and "
            "this pipeline declares no models"
        )
    liveness = Liveness("trainer")
    serve_health_and_metrics(settings.web_host, settings.web_port, liveness, metrics.registry)
    log.info(
        "trainer-only process for %s; /metrics and /healthz on port %d",
        scored.name,
        settings.web_port,
    )
    mode.loop.use("uvloop")
    tune_gc()
    asyncio.run(_train_alone(learning, settings.follow_interval_s))


async def _train_alone(learning: Learning, follow_interval_s: float) -> None:
    """Until SIGTERM or SIGINT. The handlers are set here, not inherited: a process started in
    the background of a shell ignores SIGINT, and SIGTERM's default gives no clean stop."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    loops = [
        asyncio.create_task(learning.follower.follow(follow_interval_s)),
        asyncio.create_task(learning.trainer.run()),
    ]
    stop = asyncio.create_task(stopping.wait())
    try:
        done, _ = await asyncio.wait([*loops, stop], return_when=asyncio.FIRST_COMPLETED)
        for task in done - {stop}:
            task.result()  # the loops run until stopped: one that ends has failed
    except Exception as exc:
        _die(exc)
    log.info("trainer-only process stopping; the lease passes on when it expires")
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)


def run_worker(settings: Settings) -> None:
    """Run a worker until it is stopped; infrastructure failure exits with EXIT_INFRA.

    Faust may not create topics (they come from topics/*.yaml), so the worker first checks
    that its topics exist and says how to create them, instead of waiting for them silently.
    """
    catalog = SchemaCatalog.load(settings.schemas_dir)
    scored, _ = scored_stream(settings, catalog)
    require_topics(
        KafkaAdmin(settings.kafka_bootstrap, timeout_s=settings.kafka_timeout_s), scored.topics
    )
    if not settings.inference:
        run_trainer(settings, catalog, scored)
        return
    if settings.pii_key.get_secret_value() == DEV_PII_KEY:
        log.warning("STREAMPROC_PII_KEY is the development key: set a secret one in production")
    mode.loop.use("uvloop")  # libuv's loop: cheaper per callback than asyncio's own
    app = create_app(settings)
    tune_gc()
    faust_worker(app, settings.log_level).execute_from_commandline()


def faust_worker(app: faust.App, log_level: str) -> faust.Worker:
    """A Faust worker without the terminal spinner. At WARNING and above the spinner sets the
    root logger to DEBUG to spin on every record, so each debug call of aiokafka and redis
    (several per fetch) builds a record: 4-8% of the worker's samples, and a service has no
    terminal to spin on."""
    worker = faust.Worker(app, loglevel=log_level, override_logging=True)
    worker.spinner = None
    return worker


def tune_gc() -> None:
    """Collect less often, and never scan what start-up built (imports, schemas, models).

    Every batch makes tens of thousands of short-lived objects (a feature vector alone is ~30
    tuples per event); with the default thresholds the collector ran so often that it cost a
    third of the hot path (benchmarks/hotpath_bench.py). Reference counting frees these
    objects anyway; the collector is only needed for cycles, which are rare here.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def require_topics(admin: TopicLister, names: Sequence[str]) -> None:
    """Raise ConfigError naming every topic in `names` that the cluster lacks."""
    missing = sorted(set(names) - set(admin.list_topic_names()))
    if missing:
        raise ConfigError(
            f"topics missing in Kafka: {', '.join(missing)}; "
            "create them with `streamproc topics apply` (declared in topics/*.yaml)"
        )


def _worker_id(settings: Settings) -> str:
    return settings.worker_id or f"{socket.gethostname()}:{settings.web_port}"


def _registry(settings: Settings, catalog: SchemaCatalog) -> SchemaRegistry:
    auth = settings.schema_registry_auth
    secret = auth.get_secret_value() if auth is not None else None
    return make_registry(catalog, settings.schema_registry_url, secret)


def _die(error: BaseException) -> NoReturn:
    """Stop the process at once, loudly, without committing the batch in flight.

    Per-event errors never get here (the processor turns them into dead letters); what does
    is infrastructure failing past its retries, or a bug outside the processor. A Faust agent
    that raises dies quietly, and its batch would still be acked and committed on shutdown,
    so exiting hard is what keeps the batch: a restarted worker reads it again.
    """
    infra = error if isinstance(error, InfraError) else InfraError(f"{error!r}")
    log.critical("worker stopping: %s", infra, exc_info=error)
    logging.shutdown()
    os._exit(EXIT_INFRA)
