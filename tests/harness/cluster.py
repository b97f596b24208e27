"""The fault harness's own Kafka broker and Redis server, each behind a TCP proxy.

The broker has two client listeners: PLAINTEXT, advertised at the proxy's port, for the
workers (whatever the proxy does reaches them, as Kafka clients connect where the metadata
says), and DIRECT, advertised at its own port, for the harness: the load's producer and the
oracles' readers, which a proxy fault must not touch. Redis is reached by the workers through
its proxy, by the harness directly. Nothing here is the shared stack: a test may kill it all.

In the secure profile (tests/harness/secure_profile.py) the workers' listener is SASL_SSL
(SCRAM-SHA-512) and Redis serves TLS on a port of its own, the one the workers' proxy
forwards to, to an ACL user; DIRECT, the controller and Redis' plain port stay plaintext.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO
from tests.harness.processes import BrokerConfig, KafkaBroker, RedisServer, free_port
from tests.harness.proxy import TcpProxy
from tests.harness.sasl_broker import sasl_ssl_properties
from tests.harness.secure_profile import (
    Profile,
    SecureAccess,
    connection_env,
    make_secure_access,
)

CASE_PREFIX = "faults"  # every case's consumer group and Redis namespace start so (case.py)


def proxied_broker(
    folder: Path, secure: SecureAccess | None = None
) -> tuple[KafkaBroker, TcpProxy, int]:
    """A broker (not started) whose workers' listener (PLAINTEXT, or SASL_SSL with `secure`)
    is advertised at a proxy (started), and the port of its DIRECT listener."""
    config = BrokerConfig(scram_users=secure.scram_users) if secure else None
    broker = KafkaBroker(folder, config)
    proxy = TcpProxy(broker.port).start()
    direct = free_port()
    workers = "SASL_SSL" if secure else "PLAINTEXT"
    broker.config.overrides = {
        "listeners": f"{workers}://127.0.0.1:{broker.port},DIRECT://127.0.0.1:{direct},"
        f"CONTROLLER://127.0.0.1:{broker.controller_port}",
        "advertised.listeners": f"{workers}://127.0.0.1:{proxy.port},DIRECT://127.0.0.1:{direct}",
        "listener.security.protocol.map": f"{workers}:{workers},DIRECT:PLAINTEXT,"
        "CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "DIRECT",
        **(sasl_ssl_properties(workers, secure.tls.keystore) if secure else {}),
    }
    return broker, proxy, direct


@dataclass
class FaultStack:
    """A broker and a Redis server for fault tests, each with the proxy workers go through."""

    broker: KafkaBroker
    kafka_proxy: TcpProxy
    direct_port: int
    redis: RedisServer
    redis_proxy: TcpProxy
    secure: SecureAccess | None = None  # the secure profile's users and CA

    @property
    def bootstrap(self) -> str:
        """The harness's way in: past the proxy."""
        return f"127.0.0.1:{self.direct_port}"

    @property
    def worker_bootstrap(self) -> str:
        return self.kafka_proxy.address

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @property
    def worker_env(self) -> dict[str, str]:
        """A worker's settings for reaching both through their proxies, as the profile says."""
        return connection_env(self.worker_bootstrap, self.redis_proxy.address, self.secure)

    def restore(self) -> None:
        """Both proxies back to pass-through; stopped servers resumed."""
        for server in (self.broker, self.redis):
            server.resume()
        self.kafka_proxy.restore()
        self.redis_proxy.restore()

    def close(self) -> None:
        for proxy in (self.kafka_proxy, self.redis_proxy):
            proxy.close()
        for server in (self.broker, self.redis):
            server.kill()


def start_fault_stack(folder: Path, profile: Profile = "plaintext") -> FaultStack:
    """Start the broker and Redis with their proxies, and create the declared topics."""
    secure = make_secure_access(folder / "tls", f"{CASE_PREFIX}-*") if profile == "secure" else None
    broker, kafka_proxy, direct = proxied_broker(folder / "kafka", secure)
    if secure:
        redis = RedisServer(folder / "redis", secure.redis_args(), tls_port=free_port())
    else:
        redis = RedisServer(folder / "redis")
    redis_proxy = TcpProxy(redis.tls_port or redis.port).start()
    stack = FaultStack(broker, kafka_proxy, direct, redis, redis_proxy, secure)
    try:
        broker.start()
        redis.start()
        apply_topics(stack.bootstrap)
    except BaseException:
        stack.close()
        raise
    return stack


def apply_topics(bootstrap: str) -> None:
    """`streamproc topics apply` against `bootstrap`: the topics as declared in topics/."""
    env = {
        **os.environ,
        "STREAMPROC_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMPROC_TOPICS_DIR": str(REPO / "topics"),
        "STREAMPROC_KAFKA_TIMEOUT_S": "60",
    }
    subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streamproc.cli", "topics", "apply"],
        env=env,
        check=True,
        capture_output=True,
    )
