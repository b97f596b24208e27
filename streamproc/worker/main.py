"""Worker: the process the `streamproc worker` command runs: check the topics, then run the
Faust worker (worker.app), or, with STREAMPROC_INFERENCE=false, a process that only trains.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import logging.config
import signal

import mode.loop

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.health import Liveness, serve_health_and_metrics
from streamproc.adapters.kafka.admin import KafkaAdmin
from streamproc.adapters.logs import logging_config
from streamproc.adapters.redis.client import redis_client
from streamproc.config.settings import DEV_PII_KEY, Settings
from streamproc.errors import ConfigError
from streamproc.worker.app import create_app, faust_worker
from streamproc.worker.fatal import die
from streamproc.worker.wiring import (
    Learning,
    ScoredStream,
    build_learning,
    connections_summary,
    process_metrics,
    require_topics,
    require_web_port,
    schema_registry,
    scored_stream,
)

log = logging.getLogger(__name__)
TRAINER_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def run_worker(settings: Settings) -> None:
    """Run a worker until it is stopped; infrastructure failure exits with EXIT_INFRA.

    Faust may not create topics (they come from topics/*.yaml), so the worker first checks
    that its topics exist and says how to create them, instead of waiting for them silently.
    """
    require_web_port(settings.web_host, settings.web_port)
    catalog = SchemaCatalog.load(settings.schemas_dir)
    scored, _ = scored_stream(settings, catalog)
    require_topics(
        KafkaAdmin(settings.kafka_connection(), timeout_s=settings.kafka_timeout_s), scored.topics
    )
    if not settings.inference:
        run_trainer(settings, catalog, scored)
        return
    if settings.pii_key.get_secret_value() == DEV_PII_KEY:
        log.warning("STREAMPROC_PII_KEY is the development key: set a secret one in production")
    mode.loop.use("uvloop")  # libuv's loop: cheaper per callback than asyncio's own
    app = create_app(settings)
    tune_gc()
    faust_worker(app, settings.log_level, settings.json_logs).execute_from_commandline()


def run_trainer(settings: Settings, catalog: SchemaCatalog, scored: ScoredStream) -> None:
    """A process that only trains (STREAMPROC_INFERENCE=false): the trainer loop and the
    snapshot follower, /metrics and /healthz on the web port, no Faust agents and no consumer
    group."""
    logging.config.dictConfig(
        logging_config(
            settings.log_level, settings.json_logs, "ext://sys.stdout", TRAINER_LOG_FORMAT
        )
    )
    serde = AvroSerde(catalog, schema_registry(settings, catalog))
    redis = redis_client(
        settings.redis_url, settings.redis_cluster, settings.redis_tls(), settings.redis_timeout_s
    )
    metrics = process_metrics(settings)
    learning = build_learning(settings, scored, serde, redis, metrics)
    if learning is None:
        raise ConfigError(
            f"{settings.pipeline}: models: STREAMPROC_INFERENCE=false runs only a trainer, and "
            "this pipeline declares no models"
        )
    liveness = Liveness("trainer")
    serve_health_and_metrics(
        settings.web_host, settings.web_port, liveness, metrics.registry, learning.not_ready
    )
    log.info(
        "trainer-only process for %s; /metrics, /healthz and /readyz on port %d; %s",
        scored.name,
        settings.web_port,
        connections_summary(settings),
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
        die(exc)
    log.info("trainer-only process stopping; the lease passes on when it expires")
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)


def tune_gc() -> None:
    """Collect less often, and never scan what start-up built (imports, schemas, models).

    Every batch makes tens of thousands of short-lived objects (a feature vector alone is ~30
    tuples per event); with the default thresholds the collector ran so often that it cost a
    third of the hot path (benchmarks/hotpath_bench.py). Reference counting frees these
    objects anyway; the collector is only needed for cycles, which are rare here.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
