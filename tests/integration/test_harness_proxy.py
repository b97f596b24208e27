"""The fault harness's TCP proxy in front of a real redis-server: it passes bytes through, late
or not at all, refuses, swallows replies after the server acted, and cuts connections."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.harness.processes import RedisServer
from tests.harness.proxy import TcpProxy


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    started = RedisServer(tmp_path / "redis").start()
    yield started
    started.kill()


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[TcpProxy]:
    started = TcpProxy(server.port).start()
    yield started
    started.close()


def _client(port: int, timeout_s: float = 1.0) -> redis.Redis:
    """No retries: each fault shows as it is."""
    return redis.Redis(port=port, socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0))


def test_bytes_pass_through_then_late(proxy: TcpProxy) -> None:
    client = _client(proxy.port)
    assert client.set("k", "v")
    proxy.add_latency(0.3)
    started = time.monotonic()
    assert client.get("k") == b"v"
    assert time.monotonic() - started >= 0.6  # noqa: PLR2004 - late both ways
    client.close()


def test_a_blackhole_answers_nothing_until_restored(proxy: TcpProxy) -> None:
    client = _client(proxy.port)
    assert client.ping()
    proxy.blackhole()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    proxy.restore()
    assert _client(proxy.port).ping()  # a new connection; the blackholed one was closed
    client.close()


def test_a_refusing_proxy_is_a_server_that_is_down(proxy: TcpProxy) -> None:
    client = _client(proxy.port)
    assert client.ping()
    proxy.down()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    proxy.restore()
    assert client.ping()  # reconnects
    client.close()


def test_a_swallowed_reply_leaves_the_command_done(proxy: TcpProxy, server: RedisServer) -> None:
    client = _client(proxy.port, timeout_s=0.5)
    assert client.ping()
    proxy.swallow_replies(hold_s=2)
    with pytest.raises(redis.TimeoutError):
        client.set("done", "yes")
    proxy.restore()
    direct = _client(server.port)
    assert direct.get("done") == b"yes"
    direct.close()
    client.close()


def test_dropped_connections_are_cut_and_new_ones_served(proxy: TcpProxy) -> None:
    client = _client(proxy.port)
    assert client.ping()
    assert client.ping()
    accepted = proxy.accepted
    assert accepted == 1  # one connection, reused
    proxy.drop_connections()
    assert client.ping()  # the client finds its connection closed and opens another
    assert proxy.accepted == accepted + 1
    client.close()
