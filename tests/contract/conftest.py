"""A throwaway three-node Redis Cluster on loopback, for the stores' cluster contract.

Started from the same redis-server the stack uses; skipped without it (failed under CI=true).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import pytest
from redis.exceptions import RedisError

from streamproc.adapters.redis.client import AnyRedis, redis_client
from tests.conftest import unavailable

T = TypeVar("T")


def _free_ports(count: int) -> list[int]:
    """Ports p with p + 10000 free too (a cluster node also listens on its bus port)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10_000 < 65_536 and _free(port + 10_000):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        unavailable("redis-server is not installed (make up installs it)")
    assert server is not None and cli is not None
    folder = tmp_path_factory.mktemp("redis-cluster")
    ports = _free_ports(3)
    nodes = [
        subprocess.Popen(  # noqa: S603 - the stack's own redis-server
            [
                server,
                "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", str(folder / f"nodes-{port}.conf"),
                "--dir", str(folder), "--save", "", "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]  # fmt: skip
    try:
        _wait_for_ping(cli, ports)
        created = subprocess.run(  # noqa: S603
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            unavailable(f"redis-cli --cluster create failed: {created.stdout[-500:]}")
        _wait_for_cluster_ok(cli, ports[0])
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for node in nodes:
            node.terminate()
            node.wait(timeout=10)


def _wait_for_ping(cli: str, ports: list[int]) -> None:
    deadline = time.monotonic() + 20
    for port in ports:
        while (
            subprocess.run(  # noqa: S603
                [cli, "-p", str(port), "ping"], capture_output=True, text=True
            ).stdout.strip()
            != "PONG"
        ):
            if time.monotonic() > deadline:
                unavailable(f"a cluster node on port {port} did not start")
            time.sleep(0.1)


def _wait_for_cluster_ok(cli: str, port: int) -> None:
    deadline = time.monotonic() + 30
    while (
        "cluster_state:ok"
        not in subprocess.run(  # noqa: S603
            [cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True
        ).stdout
    ):
        if time.monotonic() > deadline:
            unavailable("the Redis Cluster did not reach cluster_state:ok in 30 s")
        time.sleep(0.2)


REDIS_URL = os.environ.get("STREAMPROC_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_KINDS = ["memory", "redis", "redis-cluster"]


async def connect(kind: str, request: pytest.FixtureRequest) -> AnyRedis:
    """The stack's Redis, or the throwaway cluster; skipped when down (failed under CI)."""
    if kind == "redis-cluster":
        client = redis_client(request.getfixturevalue("redis_cluster_url"), cluster=True)
    else:
        client = redis_client(REDIS_URL)
    try:
        await client.ping()
    except RedisError as exc:
        await client.aclose()
        unavailable(f"Redis ({kind}) is not reachable: {exc}")
    return client


async def each_store(
    request: pytest.FixtureRequest,
    memory: Callable[[], T],
    on_redis: Callable[[AnyRedis, str], T],
) -> AsyncIterator[T]:
    """The store for `request.param` of REDIS_KINDS: in memory, or on Redis in a namespace of
    its own that is dropped afterwards. Fixtures yield from it."""
    if request.param == "memory":
        yield memory()
        return
    client = await connect(request.param, request)
    namespace = f"test:{uuid.uuid4().hex}"
    yield on_redis(client, namespace)
    await drop(client, namespace)


async def drop(client: AnyRedis, namespace: str) -> None:
    """Delete a test's keys one by one (on a cluster they live in many slots)."""
    async for key in client.scan_iter(match=f"{namespace}:*", count=10_000):
        await client.delete(key)
    await client.aclose()
