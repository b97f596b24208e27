"""A Kafka broker (KRaft, one node) and a redis-server as child processes of the test, on free
ports in a folder of their own, so a test may SIGKILL, SIGSTOP, SIGCONT and restart them
without touching the shared stack (stack/stack.sh) that other tests use.

The broker's jars come from the stack script (`stack/stack.sh libs` fetches them once).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.conftest import REPO

BROKER_HEAP = "-Xmx512m"  # several brokers may run beside the shared one on a small machine
READY_TIMEOUT_S = 90.0


def free_port() -> int:
    """A TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def kafka_libs() -> Path:
    """The folder of the broker's jars, fetched by the stack script when missing."""
    out = subprocess.run(  # noqa: S603 - the repo's own script
        [shutil.which("bash") or "bash", str(REPO / "stack" / "stack.sh"), "libs"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


class ChildProcess:
    """A server run as a child: start, the signals a fault test sends, and a log to read."""

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        self.log_path = folder / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _spawn(self, command: Sequence[str]) -> None:
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - servers the test names
            list(command), stdout=self._log, stderr=subprocess.STDOUT, cwd=self.folder
        )

    def signal(self, signum: signal.Signals) -> None:
        if self.running():
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL and reap: nothing flushed, nothing said to anyone."""
        self.signal(signal.SIGCONT)  # a stopped process is killed all the same, but reaped late
        self.signal(signal.SIGKILL)
        self._reap(10)

    def pause(self) -> None:
        """SIGSTOP: the process holds its sockets open and answers nothing."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def terminate(self, timeout_s: float = 30) -> None:
        """SIGTERM, then SIGKILL if it has not exited in `timeout_s`."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if not self._reap(timeout_s):
            self.kill()

    def _reap(self, timeout_s: float) -> bool:
        if self._process is None:
            return True
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        if self._log is not None:
            self._log.close()
        return True

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _wait(self, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not self.running():
                raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                waited = f"{self.name} not ready in {timeout_s:.0f} s"
                raise RuntimeError(f"{waited}:\n{self.log_tail()}")
            time.sleep(0.2)


@dataclass
class BrokerConfig:
    """What a test broker differs in: extra listeners and settings, SCRAM users made at
    format time (SCRAM-SHA-512), and the listener clients are told to use."""

    overrides: Mapping[str, str] = field(default_factory=dict)
    scram_users: Mapping[str, str] = field(default_factory=dict)  # name -> password


def _cluster_id() -> str:
    """A random cluster id, as Kafka makes them: one that starts with "-" would be read as an
    option by the storage tool (one id in 64)."""
    return "A" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")[1:]


class KafkaBroker(ChildProcess):
    """One KRaft node (broker and controller). `restart()` keeps its data: topics, offsets and
    transactions survive, as they would on a real restart."""

    def __init__(self, folder: Path, config: BrokerConfig | None = None) -> None:
        super().__init__("kafka", folder)
        self.config = config or BrokerConfig()
        self.port = free_port()
        self.controller_port = free_port()
        self._libs = kafka_libs()
        self._properties = folder / "server.properties"
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self) -> dict[str, str]:
        base = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.folder / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "group.initial.rebalance.delay.ms": "0",
        }
        return {**base, **self.config.overrides}

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            BROKER_HEAP,
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.folder / 'log4j.properties'}",
            "-cp",
            f"{self._libs}/*",
            *args,
        ]

    def _format(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.properties().items()]
        self._properties.write_text("\n".join(lines) + "\n")
        (self.folder / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )
        scram = [
            part
            for name, password in self.config.scram_users.items()
            for part in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]
        subprocess.run(  # noqa: S603 - the broker's own storage tool
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(self._properties),
                *scram,
            ),
            check=True,
            capture_output=True,
        )
        self._formatted = True

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> KafkaBroker:
        """Start (formatting the storage the first time) and wait until it serves."""
        if not self._formatted:
            self._format()
        started_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._spawn(self._java("kafka.Kafka", str(self._properties)))

        def ready() -> bool:
            with self.log_path.open("rb") as log:
                log.seek(started_at)
                return b"Kafka Server started" in log.read() and port_open(self.port)

        self._wait(ready, timeout_s)
        return self

    def restart(self, down_s: float = 0.0, timeout_s: float = READY_TIMEOUT_S) -> None:
        """SIGKILL, wait `down_s`, start again on the same ports and data."""
        self.kill()
        time.sleep(down_s)
        self.start(timeout_s)


class RedisServer(ChildProcess):
    """A redis-server in the foreground, without persistence unless `args` ask for it. With
    `tls`, its one port speaks TLS only; with `tls_port`, it serves TLS there besides plaintext
    on `port` (`args` name the files: tests.harness.tls)."""

    def __init__(
        self,
        folder: Path,
        args: Sequence[str] = (),
        port: int | None = None,
        tls: bool = False,
        tls_port: int | None = None,
    ) -> None:
        super().__init__("redis", folder)
        self.port = port or free_port()
        self.args = list(args)
        self.tls = tls
        self.tls_port = tls_port

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _ports(self) -> list[str]:
        if self.tls:
            return ["--port", "0", "--tls-port", str(self.port)]
        also_tls = ["--tls-port", str(self.tls_port)] if self.tls_port else []
        return ["--port", str(self.port), *also_tls]

    def start(self, timeout_s: float = 15.0) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            *self._ports(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
            *self.args,
        ]
        self._spawn(command)
        ports = [self.port, *([self.tls_port] if self.tls_port else [])]
        self._wait(lambda: all(port_open(port) for port in ports), timeout_s)
        return self

    def restart(self, down_s: float = 0.0) -> None:
        """SIGKILL and start again: without persistence it comes back empty."""
        self.kill()
        time.sleep(down_s)
        self.start()
