"""`streamproc state show|accept`: whether the deployment's Redis state is marked degraded (Redis
lost it: see adapters/redis/marker.py), and clearing that mark once it was rebuilt."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from streamproc.adapters.redis.client import redis_client
from streamproc.adapters.redis.marker import RedisStateMarker
from streamproc.cli.common import Subcommands
from streamproc.config.settings import Settings

T = TypeVar("T")


def register(commands: Subcommands) -> None:
    state = commands.add_parser("state", help="the deployment's Redis state: lost or whole")
    actions = state.add_subparsers(required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the state's epoch, and why it is degraded if it is")
    show.set_defaults(command=_show)
    accept = actions.add_parser(
        "accept", help="clear the degraded mark (after a replay rebuilt the state, or to accept it)"
    )
    accept.set_defaults(command=_accept)


def _show(args: argparse.Namespace, settings: Settings) -> int:
    mark = asyncio.run(_marker(settings, lambda marker: marker.read()))
    if mark is None:
        print("no state marker: no worker has run on this namespace, or Redis lost it since")
        return 1
    print(f"epoch {mark.epoch}")
    print(f"degraded: {mark.degraded}" if mark.degraded else "whole (not marked degraded)")
    return 1 if mark.degraded else 0


def _accept(args: argparse.Namespace, settings: Settings) -> int:
    cleared = asyncio.run(_marker(settings, lambda marker: marker.accept()))
    print("degraded mark cleared" if cleared else "the state was not marked degraded")
    return 0


async def _marker(settings: Settings, action: Callable[[RedisStateMarker], Awaitable[T]]) -> T:
    client = redis_client(
        settings.redis_url, settings.redis_cluster, settings.redis_tls(), settings.redis_timeout_s
    )
    try:
        return await action(RedisStateMarker(client, settings.deployment().namespace))
    finally:
        await client.aclose()
