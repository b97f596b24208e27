"""`streamproc replay | promote | rollback | versions`: deployment versions (docs/replay.md)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.kafka.admin import (
    KafkaAdmin,
    committed_offsets,
    offsets_at,
    start_group_at,
)
from streamproc.adapters.redis.client import AnyRedis, redis_client
from streamproc.adapters.redis.serving import PointerMoved, RedisServingPointer, RedisVersions
from streamproc.cli.common import EXIT_CODES, EXIT_FAILURE, Subcommands, positive_int
from streamproc.config.base import duration_ms
from streamproc.config.deployment import VERSION_PATTERN, Deployment, is_version, shadow_topic
from streamproc.config.settings import Settings
from streamproc.config.topics import TopicSpec, load_topic_specs, plan_changes
from streamproc.errors import ConfigError
from streamproc.tools.replay import (
    REPLAY_WORKER_SETTINGS,
    ReplayPlan,
    group_progress,
    run_replay,
)
from streamproc.tools.versions import (
    RefusedSwitch,
    Switch,
    listing,
    promote,
    require_version_free,
    rollback,
)

if TYPE_CHECKING:
    from streamproc.worker.wiring import ScoredStream

T = TypeVar("T")
CAUGHT_UP_RECORDS = 1000  # `promote` refuses a version further behind the raw topic


def _version(text: str) -> str:
    if not is_version(text):
        raise argparse.ArgumentTypeError(
            f"{text}: expected a version such as v2 ({VERSION_PATTERN})"
        )
    return text


def _start(text: str) -> str:
    if text != "earliest":
        try:
            datetime.fromisoformat(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(
                f"{text}: expected `earliest` or an ISO time (2026-11-30T00:00:00+00:00)"
            ) from exc
    return text


def register(commands: Subcommands) -> None:
    replay = commands.add_parser(
        "replay",
        help="rebuild a deployment version from the log, beside the serving one",
        description="Replays the raw topic (and the labels) into a new version: its own Redis "
        "namespace, consumer group, model lineage and output topics (created here from "
        "topics/*.yaml, suffixed .<version>), with bigger batches than a live worker. Reports "
        "progress until it has caught up with the log's end, then follows it as a shadow "
        "until stopped (SIGINT/SIGTERM). Running it again resumes where the version's group is.",
        epilog=EXIT_CODES,
    )
    replay.add_argument(
        "--namespace",
        type=_version,
        required=True,
        metavar="VERSION",
        help="the version to build: v2, v3, ...",
    )
    replay.add_argument(
        "--pipeline",
        type=Path,
        default=None,
        help="the pipeline declaration of the new version (default: STREAMPROC_PIPELINE)",
    )
    replay.add_argument(
        "--from",
        dest="start",
        type=_start,
        default="earliest",
        help="`earliest` (default) or an ISO time: the first record replayed "
        "is the first the raw topic logged from then on",
    )
    replay.add_argument(
        "--until-caught-up",
        action="store_true",
        help="stop once caught up instead of following as a shadow",
    )
    replay.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help=f"records per batch (default {REPLAY_WORKER_SETTINGS['STREAMPROC_BATCH_SIZE']})",
    )
    replay.add_argument(
        "--web-port",
        type=int,
        default=None,
        help="the replay worker's /metrics port (default: a free one)",
    )
    replay.add_argument(
        "--log",
        type=Path,
        default=None,
        help="the replay worker's log file (default: <STREAMPROC_DATA_DIR>/replay-<version>.log)",
    )
    replay.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between progress lines (default 2)",
    )
    replay.set_defaults(command=_replay)

    promote_cmd = commands.add_parser(
        "promote",
        help="serve a version: reads, workers and the predictions topic switch to it",
        description="Points serving at VERSION in one write: feature reads follow at once, "
        "the workers with their next batch, and the predictions topic from a log time five "
        "seconds on (each event's prediction is sent there once, by one version). The "
        "version served until now goes on as a shadow, and its namespace is dropped after "
        "the grace period unless `streamproc rollback` returns to it first.",
        epilog=EXIT_CODES,
    )
    promote_cmd.add_argument("version", type=_version, metavar="VERSION")
    _grace_argument(promote_cmd)
    promote_cmd.add_argument(
        "--force", action="store_true", help="promote even if the version has not caught up"
    )
    promote_cmd.set_defaults(command=_promote)

    back = commands.add_parser(
        "rollback",
        help="serve the previous version again (within its grace period)",
        epilog=EXIT_CODES,
    )
    _grace_argument(back)
    back.set_defaults(command=_rollback)

    versions = commands.add_parser(
        "versions",
        help="the deployment's versions: serving, shadow, retired; how far behind",
        epilog=EXIT_CODES,
    )
    versions.add_argument("--json", action="store_true", help="one JSON object per version")
    versions.set_defaults(command=_versions)


def _grace_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--grace",
        default="24h",
        metavar="DURATION",
        help="how long the version demoted now is kept for a rollback, before its namespace "
        "is dropped (default 24h; 30m, 7d, ...)",
    )


def _scored(settings: Settings) -> tuple[ScoredStream, str]:
    """The settings' scored stream and raw topic. Imported here: the command line loads the
    worker's modules only for the commands that need them."""
    from streamproc.worker.wiring import scored_stream  # noqa: PLC0415

    scored, shop = scored_stream(settings, SchemaCatalog.load(settings.schemas_dir))
    return scored, shop.source.topic if shop is not None else scored.topic


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    version = args.namespace
    pipeline = args.pipeline or settings.pipeline
    mine = settings.model_copy(update={"version": version, "pipeline": pipeline})
    deployment = mine.deployment()
    scored, raw = _scored(mine)
    text = pipeline.read_bytes()
    about = {
        "pipeline": str(pipeline),
        "pipeline_sha256": hashlib.sha256(text).hexdigest(),
        "features": scored.features.model_dump(mode="json"),
        "from": args.start,
        "started_at_ms": int(time.time() * 1000),
    }

    async def register_version(client: AnyRedis) -> None:
        require_version_free(
            version, await RedisServingPointer(client, settings.redis_namespace).read()
        )
        versions = RedisVersions(client, settings.redis_namespace)
        known = await versions.about(version)
        if known is not None and known.get("pipeline_sha256") != about["pipeline_sha256"]:
            raise ConfigError(
                f"--namespace {version}: that version was started from another pipeline "
                f"({known.get('pipeline')}); replay into a new version"
            )
        if known is None:
            await versions.record(version, about)

    _with_redis(settings, register_version)
    _create_topics(settings, scored, deployment)
    if args.start != "earliest":
        start_ms = int(datetime.fromisoformat(args.start).timestamp() * 1000)
        labels = (scored.models.labels.topic,) if scored.models is not None else ()
        _start_at(settings, deployment.group, (raw, *labels), start_ms)
    env = {
        **REPLAY_WORKER_SETTINGS,
        "STREAMPROC_VERSION": version,
        "STREAMPROC_PIPELINE": str(pipeline),
        "STREAMPROC_WEB_PORT": str(args.web_port or _free_port(settings.web_host)),
        "STREAMPROC_WORKER_ID": f"replay-{version}",
    }
    if args.batch_size:
        env["STREAMPROC_BATCH_SIZE"] = str(args.batch_size)
    plan = ReplayPlan(
        version,
        deployment.group,
        settings.kafka_connection(),
        (raw, scored.topic) if scored.topic != raw else (raw,),
        env,
        args.log or settings.data_dir / f"replay-{version}.log",
        interval_s=args.interval,
        until_caught_up=args.until_caught_up,
    )
    return run_replay(plan)


def _start_at(settings: Settings, group: str, topics: tuple[str, ...], start_ms: int) -> None:
    """Where a new version's group starts reading: the first record logged from `start_ms`
    on (the raw orders, and the labels: the trainer reads them where the group is)."""
    kafka = settings.kafka_connection()
    for topic in topics:
        if not committed_offsets(kafka, group, topic):  # a resumed replay goes on
            start_group_at(kafka, group, offsets_at(kafka, topic, start_ms))


def _create_topics(settings: Settings, scored: ScoredStream, deployment: Deployment) -> None:
    """The version's output topics, declared as the topics they stand for."""
    wanted = dict(scored.renames)
    if scored.models is not None:
        main = scored.models.predictions.topic
        wanted[main] = shadow_topic(main, deployment.version)
    _create_like(settings, wanted)


def _create_like(settings: Settings, wanted: dict[str, str]) -> None:
    declared = {spec.name: spec for spec in load_topic_specs(settings.topics_dir)}
    specs = []
    for name, new_name in wanted.items():
        spec = declared.get(name)
        if spec is None:
            raise ConfigError(f"topic {name} is not declared in {settings.topics_dir}/*.yaml")
        specs.append(
            TopicSpec(
                new_name,
                spec.partitions,
                spec.replication_factor,
                spec.config,
                spec.source,
                spec.value_schema,
            )
        )
    admin = KafkaAdmin(settings.kafka_connection(), timeout_s=settings.kafka_timeout_s)
    plan = plan_changes(specs, admin.read_state(specs))
    if plan.create:
        admin.apply(plan)
        print(f"created {', '.join(spec.name for spec in plan.create)}", flush=True)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _with_redis(settings: Settings, action: Callable[[AnyRedis], Awaitable[T]]) -> T:
    async def run() -> T:
        client = redis_client(settings.redis_url, settings.redis_cluster, settings.redis_tls())
        try:
            return await action(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def _behind(settings: Settings, raw: str) -> Callable[[str], int | None]:
    """Records a version's group has left on the raw topic; None when it committed none."""
    kafka = settings.kafka_connection()

    def behind(version: str) -> int | None:
        group = Deployment(version, settings.redis_namespace, settings.app_id).group
        progress = group_progress(kafka, group, raw)
        return progress.left if progress.started else None

    return behind


def _switch(settings: Settings, client: AnyRedis, grace: str) -> Switch:
    try:
        grace_ms = duration_ms(grace)
    except ValueError as exc:
        raise ConfigError(f"--grace {grace}: {exc}") from exc
    scored, raw = _scored(settings)

    def make_shadow(version: str) -> None:
        if scored.models is not None:
            main = scored.models.predictions.topic
            _create_like(settings, {main: shadow_topic(main, version)})

    return Switch(
        RedisServingPointer(client, settings.redis_namespace),
        RedisVersions(client, settings.redis_namespace),
        grace_ms,
        _behind(settings, raw),
        make_shadow,
        sys.stdout,
    )


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    return _switching(
        settings, args.grace, lambda s: promote(s, args.version, args.force, CAUGHT_UP_RECORDS)
    )


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    return _switching(settings, args.grace, rollback)


def _switching(settings: Settings, grace: str, act: Callable[[Switch], Awaitable[Any]]) -> int:
    async def run(client: AnyRedis) -> int:
        try:
            await act(_switch(settings, client, grace))
        except (RefusedSwitch, PointerMoved) as exc:
            print(f"streamproc: refused: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        return 0

    return _with_redis(settings, run)


def _versions(args: argparse.Namespace, settings: Settings) -> int:
    async def run(client: AnyRedis) -> list[dict[str, Any]]:
        return await listing(
            RedisServingPointer(client, settings.redis_namespace),
            RedisVersions(client, settings.redis_namespace),
            _behind(settings, _scored(settings)[1]),
        )

    for row in _with_redis(settings, run):
        if args.json:
            print(json.dumps(row))
            continue
        behind = "not started" if row["behind"] is None else f"{row['behind']:,} behind"
        print(f"{row['version']:<6} {row['role']:<40} {behind:<16} {row['pipeline']}")
    return 0
