"""Worker: the Faust app and its agents: take a batch, run its flow, send; nothing else. What
the flows run comes wired from the settings (worker.wiring).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import faust
from faust.app.base import BootStrategy

from streamproc.adapters.health import HEALTH_CONTENT_TYPE, Liveness, readiness
from streamproc.adapters.kafka.batch_flow import BatchFlow, Complete, Process
from streamproc.adapters.kafka.commits import (
    AutoCommits,
    CommitHooks,
    Committer,
    TransactionalCommits,
)
from streamproc.adapters.kafka.delivery import Delivery, delivered
from streamproc.adapters.kafka.dlq import log_dead_letters
from streamproc.adapters.kafka.positions import FetchedBatch, Positions
from streamproc.adapters.kafka.producer import BatchSender
from streamproc.adapters.kafka.source import BatchConsumer, SourceSettings
from streamproc.adapters.kafka.transactions import QuietMoment, TransactionGate, Transactions
from streamproc.adapters.logs import logging_config
from streamproc.adapters.metrics import EXPOSITION_CONTENT_TYPE, StageMetrics
from streamproc.adapters.outage import ride_through
from streamproc.config.settings import Settings
from streamproc.errors import InfraError
from streamproc.records import Envelope
from streamproc.stages.clean import CleanStage
from streamproc.stages.scored import ScoredChain
from streamproc.worker.erasures import ErasureFollower
from streamproc.worker.fatal import die, on_exit
from streamproc.worker.state import WorkerState
from streamproc.worker.wiring import (
    Learning,
    WorkerParts,
    connections_summary,
    delivery_summary,
    worker_parts,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
STALL_CHECK_S = 2.0
RETIREMENT_CHECK_S = 30.0  # how often a worker looks for a version to retire


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
        settings.deployment().group,
        store="memory://",  # features live in Redis, never in Faust tables (docs/architecture.md)
        datadir=str(settings.data_dir / settings.deployment().group),
        web_port=settings.web_port,
        web_host=settings.web_host,
        web_bind=settings.web_host,  # Faust binds every address by default
    )


def serve_batches(
    app: faust.App,
    settings: Settings,
    flows: Mapping[str, Process],
    sender: BatchSender,
    state: WorkerState | None = None,
) -> None:
    """One consumer (of the version's group) for the topics of `flows`, and per topic
    an agent that processes its batches with the topic's flow and sends with `sender`
    (transactional with exactly-once delivery). With a `state`, the consumer joins the group
    once what it must read first is read (models, erasures), and pauses while a dependency
    is out."""
    positions = Positions()
    if state is not None:
        state.assigned = lambda: len(positions.owned())
    gate = TransactionGate() if settings.delivery == "exactly-once" else None
    source = SourceSettings(
        settings.kafka_connection(),
        settings.deployment().group,
        tuple(flows),
        batch_size=settings.batch_size,
        batches_in_flight=settings.batches_in_flight,
        commit_interval_s=settings.commit_interval_s,
        session_timeout_s=settings.session_timeout_s,
        fetch_wait_ms=settings.fetch_wait_ms,
        fetch_min_bytes=settings.fetch_min_bytes,
        align_ms=settings.align_partitions_ms,
    )
    channels = batch_agents(app, flows, positions, settings.batches_in_flight, gate)

    def committer(loop: asyncio.AbstractEventLoop) -> Committer:
        epoch = (lambda: state.epoch) if state is not None else (lambda: None)
        if gate is None:
            return AutoCommits(positions, source.commit_interval_s, source.revoke_timeout_s, epoch)
        transactions = Transactions(
            sender.producer,
            settings.kafka_timeout_s,
            sender.renew,
            settings.outage_budget_s,
            sender.doomed,
        )
        # a commit waits for the batches' acks, which ride through a broker outage
        quiet = QuietMoment(gate, loop, settings.outage_budget_s)
        hooks = CommitHooks(epoch)
        if state is not None:
            hooks = CommitHooks(epoch, state.metrics.commit_seconds.observe)
        return TransactionalCommits(positions, transactions, quiet, source.commit_interval_s, hooks)

    def consumer(hand_over: Callable[[FetchedBatch], None]) -> BatchConsumer:
        committing = committer(asyncio.get_running_loop())
        return BatchConsumer(source, positions, hand_over, committing, state)

    ready = [event for _, event in state.before_serving] if state is not None else []
    _intake(app, channels, consumer, ready)


def batch_agents(
    app: faust.App,
    flows: Mapping[str, Process],
    positions: Positions,
    in_flight: int,
    gate: TransactionGate | None = None,
) -> dict[str, Any]:
    """Per topic of `flows`, a channel and an agent walking the batches handed onto it with
    the topic's flow (a failure stops the process: die); returns the channels."""
    # room for every batch the consumer may have queued (one per topic): a hand-over never waits
    channels = {topic: app.channel(maxsize=len(flows) + 1) for topic in flows}
    for topic, process in flows.items():
        flow = BatchFlow(positions, process, in_flight, die, gate)
        _agent(app, channels[topic], f"batches_of_{topic}", flow)
    return channels


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired from `settings`; nothing connects until a worker starts it."""
    parts = worker_parts(settings)
    app = worker_app(settings)
    flows: dict[str, Process] = {}
    if parts.clean is not None:
        topic = parts.clean.spec.source.topic
        flows[topic] = clean_flow(parts.clean, parts.sender, parts.metrics, topic, parts.state)
    learning = parts.learning
    if parts.scored.features.views or learning is not None:
        # The scored topic is keyed by entity: one worker owns an entity's partition, so one
        # writer updates its features; a zombie's write is refused (OffsetConflict).
        topic = parts.scored.topic
        flows[topic] = scored_flow(parts.chain, parts.sender, parts.metrics, topic, parts.state)

    # A restarted worker scores with its restored models, and knows every erasure: it reads
    # no topic before them (a batch waiting for them inside an agent held up the other
    # topics' batches as well).
    serve_batches(app, settings, flows, parts.sender, parts.state)

    _erasure_task(app, settings, parts.erasures)
    _retirement_task(app, parts)
    if learning is not None:
        _learning_tasks(app, settings, learning)
    _pages(app, parts.metrics, parts.state, settings.stall_timeout_s)
    _watchdog(app, settings, parts.state, parts.metrics)

    @app.task  # type: ignore[untyped-decorator]
    async def announce() -> None:  # in a task, Faust has set up the log
        log.info("worker %s: %s", settings.deployment().group, connections_summary(settings))
        log.info("worker %s: %s", settings.deployment().group, delivery_summary(settings))

    return app


def _erasure_task(app: faust.App, settings: Settings, erasures: ErasureFollower) -> None:
    """The erasure follower, as an app task."""

    @app.task  # type: ignore[untyped-decorator]
    async def follow_erasures() -> None:
        try:
            await erasures.follow(settings.erasure_interval_s)
        except Exception as exc:
            die(exc)


def _retirement_task(app: faust.App, parts: WorkerParts) -> None:
    """The retirement of the version served before this one, as an app task."""

    @app.task  # type: ignore[untyped-decorator]
    async def retire_previous() -> None:
        try:
            await parts.retirement.run(RETIREMENT_CHECK_S)
        except Exception as exc:
            die(exc)


def _learning_tasks(app: faust.App, settings: Settings, learning: Learning) -> None:
    """The snapshot follower, and the trainer where this worker may train, as app tasks."""

    @app.task  # type: ignore[untyped-decorator]
    async def follow_snapshots() -> None:
        try:
            await learning.follower.follow(settings.follow_interval_s)
        except Exception as exc:
            die(exc)

    if settings.trainer:

        @app.task  # type: ignore[untyped-decorator]
        async def train() -> None:
            try:
                await learning.trainer.run()
            except Exception as exc:
                die(exc)


def _watchdog(
    app: faust.App, settings: Settings, state: WorkerState, metrics: StageMetrics
) -> None:
    """A batch stuck in processing while Redis and Kafka answer (a stage that blocks) is
    reported within the stall timeout (log, metric, /healthz), and ends the worker once it
    has lasted the outage budget: never a silent stall."""

    @app.timer(interval=STALL_CHECK_S)  # type: ignore[untyped-decorator]
    async def watch_for_stalls() -> None:
        stalled_s = state.stalled_s()
        metrics.stalled_seconds.set(stalled_s)
        if stalled_s < settings.stall_timeout_s:
            return
        log.error(
            "a batch has been in processing for %.0f s while Redis and Kafka answer: stalled "
            "(/healthz says so; the worker exits at %.0f s)",
            stalled_s,
            settings.outage_budget_s,
        )
        if stalled_s >= settings.outage_budget_s:
            die(InfraError(f"a batch stalled in processing for {stalled_s:.0f} s"))


def _pages(
    app: faust.App, metrics: StageMetrics, state: WorkerState, stall_timeout_s: float
) -> None:
    """/metrics, /healthz (alive, and no batch stalled) and /readyz on the web server."""
    liveness = Liveness("worker")

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(metrics.exposition(), content_type=EXPOSITION_CONTENT_TYPE)

    @app.page("/healthz")
    async def health_page(web: Any, request: Any) -> Any:
        stalled_s = state.stalled_s()
        if stalled_s >= stall_timeout_s:
            body = json.dumps({"status": "stalled", "stalled_s": round(stalled_s, 1)}).encode()
            return web.bytes(body, content_type=HEALTH_CONTENT_TYPE, status=503)
        return web.bytes(liveness.body(), content_type=HEALTH_CONTENT_TYPE)

    @app.page("/readyz")
    async def ready_page(web: Any, request: Any) -> Any:
        status, body = readiness(state.not_ready())
        return web.bytes(body, content_type=HEALTH_CONTENT_TYPE, status=status)


def clean_flow(
    stage: CleanStage, sender: BatchSender, metrics: StageMetrics, topic: str, state: WorkerState
) -> Process:
    """A raw topic's flow: clean a batch, hand its outputs to `sender`; the completion waits
    for their acks and counts the batch (less what Kafka refused, dead-lettered instead).
    Redis state is checked first; an outage is ridden through (the batch is tried again)."""

    async def clean_batch(batch: list[Envelope]) -> Complete:
        started = time.perf_counter()
        with state.processing():
            checked = _checked(state, lambda: stage.process(batch))
            result = await ride_through(checked, state.outages)
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
            metrics.observe_batch(topic, batch, result, seconds)
            log_dead_letters(result.rejections)

        return complete

    return clean_batch


def scored_flow(
    chain: ScoredChain, sender: BatchSender, metrics: StageMetrics, topic: str, state: WorkerState
) -> Process:
    """The scored topic's flow: features and predictions of a batch, handed to `sender`; the
    completion waits for their acks and counts the batch. As in clean_flow, Redis state is
    checked first and an outage ridden through."""

    async def feature_batch(batch: list[Envelope]) -> Complete:
        started = time.perf_counter()
        with state.processing():
            checked = _checked(state, lambda: chain.process(batch))
            result = await ride_through(checked, state.outages)
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
            metrics.observe_features(topic, batch, result, seconds)
            log_dead_letters(step.rejections)

        return complete

    return feature_batch


def _checked(state: WorkerState, process: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """`process`, after the Redis state marker's check."""

    async def checked() -> T:
        await state.check()
        return await process()

    return checked


def _agent(app: faust.App, channel: Any, name: str, flow: BatchFlow) -> None:
    """A Faust agent whose stream items are whole fetched batches."""

    async def walk(stream: Any) -> None:
        await flow.run(stream)

    walk.__name__ = walk.__qualname__ = name  # how Faust's logs name the agent
    app.agent(channel, name=name)(walk)


def _intake(
    app: faust.App,
    channels: Mapping[str, Any],
    make_consumer: Callable[[Callable[[FetchedBatch], None]], BatchConsumer],
    ready: Sequence[asyncio.Event],
) -> None:
    """Run the consumer in a thread of its own while the app runs, handing each batch onto
    its topic's channel; on shutdown, before the agents stop, let it finish the batches begun
    and commit them (a SIGTERM loses nothing and repeats nothing). On a failure (die) it
    leaves the group without committing, so a restart need not wait out the session."""
    thread = ThreadPoolExecutor(1, thread_name_prefix="streamproc-consumer")
    running: list[tuple[BatchConsumer, asyncio.Future[None]]] = []

    @app.task  # type: ignore[untyped-decorator]
    async def consume() -> None:
        loop = asyncio.get_running_loop()
        app.flow_control.resume()  # Faust resumes it in its Kafka layer, which is off
        for event in ready:
            await event.wait()

        def hand_over(batch: FetchedBatch) -> None:  # in the consumer's thread
            sending = channels[batch.topic].send(value=batch)
            asyncio.run_coroutine_threadsafe(sending, loop).result()

        consumer = make_consumer(hand_over)
        on_exit(consumer.abandon)
        running.append((consumer, loop.run_in_executor(thread, consumer.run)))
        try:
            await running[0][1]
        except Exception as exc:
            die(exc)

    async def finish_batches(*_: Any, **__: Any) -> None:
        for consumer, done in running:
            consumer.stop()
            await asyncio.shield(done)

    app.on_before_shutdown.connect(finish_batches)


def faust_worker(app: faust.App, log_level: str, json_logs: bool) -> faust.Worker:
    """A Faust worker without the terminal spinner. At WARNING and above the spinner sets the
    root logger to DEBUG to spin on every record, so each debug call of aiokafka and redis
    (several per fetch) builds a record: 4-8% of the worker's samples, and a service has no
    terminal to spin on. Its log is Faust's own, or JSON lines with `json_logs`."""
    config = logging_config(log_level, True, "ext://sys.stdout", "") if json_logs else None
    worker = faust.Worker(app, loglevel=log_level, override_logging=True, logging_config=config)
    worker.spinner = None
    return worker
