"""`streamproc features get`: an entity's online features in Redis, with status and age."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from streamproc.adapters.redis.client import redis_client
from streamproc.adapters.redis.serving_reader import ServingFeatureReader
from streamproc.adapters.redis.stores import RedisFeatureStore, features_namespace
from streamproc.cli.common import Subcommands
from streamproc.config.deployment import version_namespace
from streamproc.config.pipeline import Features, load_pipeline
from streamproc.config.settings import Settings
from streamproc.core.features.reader import FeatureReader
from streamproc.core.features.state import FeatureValue


def register(commands: Subcommands) -> None:
    features = commands.add_parser("features", help="online features in Redis")
    actions = features.add_subparsers(required=True, metavar="ACTION")
    get = actions.add_parser("get", help="an entity's features, status and age")
    get.add_argument("entities", nargs="+", metavar="ENTITY", help="entity keys")
    get.add_argument(
        "--at", type=int, default=None, help="event time (epoch ms); default: its newest event"
    )
    get.add_argument("--json", action="store_true", help="one JSON object per entity")
    get.add_argument(
        "--version",
        default=None,
        help="read this deployment version's namespace (default: the serving version's)",
    )
    get.set_defaults(command=_get)


def _get(args: argparse.Namespace, settings: Settings) -> int:
    spec = load_pipeline(settings.pipeline)
    version, vectors = asyncio.run(
        _read_features(settings, spec.features, args.entities, args.at, args.version)
    )
    for entity, features in vectors.items():
        if args.json:
            as_dicts = {name: feature._asdict() for name, feature in features.items()}
            print(json.dumps({"entity": entity, "version": version, "features": as_dicts}))
            continue
        print(f"{entity} (version {version})")
        for name, feature in features.items():
            age = "" if feature.age_ms is None else f"{feature.age_ms / 1000:,.0f} s"
            print(f"  {name:<28} {feature.value!s:>24}  {feature.status:<8} {age}")
    return 0


async def _read_features(
    settings: Settings,
    features: Features,
    entities: list[str],
    at_ms: int | None,
    version: str | None,
) -> tuple[str, dict[str, dict[str, FeatureValue]]]:
    client = redis_client(settings.redis_url, settings.redis_cluster, settings.redis_tls())
    wall_ms = int(time.time() * 1000)
    try:
        if version is None:
            serving = ServingFeatureReader(client, settings.redis_namespace, features)
            return await serving.get_many(entities, wall_ms, at_ms)
        namespace = version_namespace(settings.redis_namespace, version)
        store = RedisFeatureStore(client, features_namespace(namespace))
        return version, await FeatureReader(features, store).get_many(entities, wall_ms, at_ms)
    finally:
        await client.aclose()
