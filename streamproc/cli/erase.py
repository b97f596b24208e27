"""`streamproc erase SUBJECT`: erase a data subject (GDPR art. 17) from the deployment's Redis
and record it, so its later orders are pseudonymised and a replay brings nothing back."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict

from streamproc.adapters.kafka.admin import KafkaAdmin
from streamproc.adapters.kafka.erasures import ERASURES_TOPIC, ErasureTopic
from streamproc.adapters.redis.client import AnyRedis, redis_client
from streamproc.adapters.redis.served import RedisServedLog
from streamproc.adapters.redis.serving import RedisServingPointer, RedisVersions
from streamproc.adapters.redis.stores import (
    RedisFeatureStore,
    RedisSeenStore,
    features_namespace,
    pipeline_namespace,
)
from streamproc.cli.common import Subcommands
from streamproc.config.deployment import BASE_VERSION, version_namespace
from streamproc.config.pipeline import Features, PipelineSpec
from streamproc.config.settings import Settings
from streamproc.config.tabular import TabularSpec, load_declaration
from streamproc.core.erasure import FeatureHashes, SubjectData
from streamproc.tools.erase import ErasureReport, erase, require_erasure_topic, subject_entity


def register(commands: Subcommands) -> None:
    command = commands.add_parser(
        "erase",
        help="erase a data subject (GDPR): its Redis data, and its later orders pseudonymised",
        description="Records the erasure on the compacted topic "
        f"{ERASURES_TOPIC} (workers pseudonymise the subject's later orders and drop its "
        "earlier clean ones), then deletes the subject's features, dedupe memory and served x "
        "from the deployment's Redis (STREAMPROC_REDIS_NAMESPACE), now and again once the "
        "workers have read the erasure. What it cannot erase: docs/threat-model.md.",
    )
    command.add_argument(
        "subject",
        metavar="SUBJECT",
        help="the subject's value of FIELD: in the shop, a customer id, or with --field email "
        "a guest's e-mail address",
    )
    command.add_argument(
        "--field",
        default=None,
        help="the raw field SUBJECT is a value of, one the pipeline's entity key is built from "
        "(default: the first, customer_id in the shop)",
    )
    command.add_argument("--json", action="store_true", help="the report as one JSON object")
    command.set_defaults(command=_erase)


def _erase(args: argparse.Namespace, settings: Settings) -> int:
    declared = load_declaration(settings.pipeline)
    pii_key = settings.pii_key.get_secret_value().encode()
    entity = subject_entity(declared, pii_key, args.subject, args.field)
    kafka = KafkaAdmin(settings.kafka_connection(), timeout_s=settings.kafka_timeout_s)
    require_erasure_topic(kafka)
    report = asyncio.run(_run(settings, declared, entity, pii_key))
    if args.json:
        print(json.dumps(asdict(report)))
        return 0
    deleted = ", ".join(f"{name} {count}" for name, count in report.deleted.items())
    print(f"erased {report.entity_key} (recorded on {ERASURES_TOPIC} as {report.pseudonym})")
    print(f"deleted from Redis: {deleted}; {report.seconds:.2f} s")
    return 0


async def _live_versions(
    client: AnyRedis, settings: Settings, declared: Features
) -> dict[str, Features]:
    """v1 and every version a replay recorded, but a retired one; each with its features."""
    recorded = await RedisVersions(client, settings.redis_namespace).all()
    retired = (await RedisServingPointer(client, settings.redis_namespace).read()).retired
    live = {BASE_VERSION: declared}
    for version, about in recorded.items():
        if "features" in about:
            live[version] = Features.model_validate(about["features"])
    return {version: f for version, f in live.items() if version != retired}


async def _run(
    settings: Settings, declared: PipelineSpec | TabularSpec, entity: str, pii_key: bytes
) -> ErasureReport:
    client = redis_client(
        settings.redis_url, settings.redis_cluster, settings.redis_tls(), settings.redis_timeout_s
    )
    stores: dict[str, SubjectData] = {}
    for version, features in (await _live_versions(client, settings, declared.features)).items():
        # every live version's state: a replay may have built it before the erasure
        suffix = "" if version == BASE_VERSION else f"@{version}"
        namespace = version_namespace(settings.redis_namespace, version)
        in_pipeline = pipeline_namespace(namespace, declared.name)
        stores[f"features{suffix}"] = FeatureHashes(
            features, RedisFeatureStore(client, features_namespace(namespace))
        )
        stores[f"served_x{suffix}"] = RedisServedLog(client, in_pipeline)
        if isinstance(declared, PipelineSpec):  # a tabular pipeline has no clean stage
            stores[f"dedupe{suffix}"] = RedisSeenStore(client, in_pipeline)
    topic = ErasureTopic.connect(settings.kafka_connection(), settings.kafka_timeout_s)
    try:
        return await erase(entity, pii_key, topic, stores, 2 * settings.erasure_interval_s)
    finally:
        topic.close()
        await client.aclose()
