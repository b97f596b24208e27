"""Workers for fault tests: real `streamproc worker` processes, and a supervisor that restarts
one that exits, as a container's restart policy would, noting every exit it did not ask for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO
from tests.harness.cluster import FaultStack
from tests.harness.processes import free_port

PII_KEY = "fault-test-pii-key"
SESSION_TIMEOUT_S = 6  # the least allowed (default 30 s): a killed worker's partitions move sooner
START_TIMEOUT_S = 60.0
RESTART_DELAYS_S = (1.0, 2.0, 4.0, 8.0)  # a crash loop backs off, as Docker's policy does
STABLE_AFTER_S = 30.0
WORKER_MODULE = "streamproc.cli"


@dataclass(frozen=True, slots=True)
class Exit:
    """A worker that stopped: when, with which code, whether the test asked for it."""

    worker: str
    code: int
    at: float  # time.monotonic()
    asked: bool
    log_tail: str


def worker_env(
    stack: FaultStack, group: str, port: int, folder: Path, overrides: Mapping[str, str]
) -> dict[str, str]:
    """A worker of `group` (also its Redis namespace) on the stack's proxies."""
    return {
        **os.environ,
        **stack.worker_env,
        "STREAMPROC_APP_ID": group,
        "STREAMPROC_REDIS_NAMESPACE": group,
        "STREAMPROC_PII_KEY": PII_KEY,
        "STREAMPROC_PIPELINE": str(REPO / "pipelines/shop_orders.yaml"),
        "STREAMPROC_WEB_PORT": str(port),
        "STREAMPROC_DATA_DIR": str(folder / "state"),
        "STREAMPROC_SCHEMAS_DIR": str(REPO / "schemas"),
        "STREAMPROC_TOPICS_DIR": str(REPO / "topics"),
        "STREAMPROC_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_S),
        "STREAMPROC_WORKER_ID": folder.name,
        **overrides,
    }


class WorkerProcess:
    """One worker process: its signals, its pages, its log and its memory."""

    def __init__(self, name: str, env: Mapping[str, str], folder: Path, module: str) -> None:
        self.name = name
        self.folder = folder
        self.worker_id = env["STREAMPROC_WORKER_ID"]
        self.port = int(env["STREAMPROC_WEB_PORT"])
        self.log = folder / "worker.log"
        folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own CLI
                [sys.executable, "-m", module, "worker"],
                env=dict(env),
                stdout=out,
                stderr=out,
                cwd=REPO,  # where `-m` finds a test's own entry point (tests.faults...)
            )
        self.started_at = time.monotonic()
        self.peak_rss_mb = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def page(self, path: str, timeout_s: float = 2.0) -> tuple[int, str] | None:
        """A page's status and body; None when nothing answers."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), ""
        except (OSError, TimeoutError):
            return None

    def metrics(self) -> str | None:
        answer = self.page("/metrics")
        return answer[1] if answer and answer[0] == 200 else None  # noqa: PLR2004

    def rss_mb(self) -> float | None:
        """Resident memory now (the peak is kept as it is sampled)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
                self.peak_rss_mb = max(self.peak_rss_mb, rss)
                return rss
        return None

    def signal(self, signum: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def wait_serving(self, timeout_s: float = START_TIMEOUT_S) -> bool:
        """Whether it serves /metrics within `timeout_s` (False: it exited or hangs)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.alive():
            if self.metrics() is not None:
                return True
            time.sleep(0.2)
        return False

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Workers:
    """The workers of one case, restarted by a supervisor thread when they exit unasked."""

    def __init__(
        self,
        stack: FaultStack,
        group: str,
        folder: Path,
        overrides: Mapping[str, str] | None = None,
        module: str = WORKER_MODULE,
    ) -> None:
        self._stack = stack
        self._group = group
        self._folder = folder
        self._overrides = dict(overrides or {})
        self._module = module
        self._count = 0
        self._lock = threading.RLock()
        self.running: list[WorkerProcess] = []
        self.retired: list[WorkerProcess] = []  # stopped or replaced: their peaks still count
        self.exits: list[Exit] = []
        self._asked: set[int] = set()  # pids the test stopped or killed
        self._restarts: dict[int, int] = {}  # pid -> restarts in a row, for the backoff
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._supervise, name="fault-supervisor", daemon=True
        )
        self._thread.start()

    def start(self, wait: bool = True, streak: int = 0) -> WorkerProcess:
        """A new worker; with `wait`, once it serves /metrics (it may still exit later)."""
        with self._lock:
            self._count += 1
            name = f"worker-{self._count}"
            port = free_port()
            folder = self._folder / name
            env = worker_env(self._stack, self._group, port, folder, self._overrides)
            # A new worker takes a free slot's id, as a supervisor restarts a worker under its
            # name: it fences the transaction its predecessor left open at once.
            taken = {w.worker_id for w in self.running if w.alive()}
            env["STREAMPROC_WORKER_ID"] = next(
                f"slot-{n}" for n in range(len(taken) + 1) if f"slot-{n}" not in taken
            )
            worker = WorkerProcess(name, env, folder, self._module)
            self._restarts[worker.pid] = streak
            self.running.append(worker)
        if wait and not worker.wait_serving():
            alive = worker.alive()
            raise AssertionError(
                f"{name} {'hangs' if alive else 'exited'} at start:\n{worker.log_tail()}"
            )
        return worker

    def start_all(self, count: int) -> list[WorkerProcess]:
        """`count` new workers started together, once all serve /metrics."""
        started = [self.start(wait=False) for _ in range(count)]
        for worker in started:
            if not worker.wait_serving():
                raise AssertionError(f"{worker.name} did not start:\n{worker.log_tail()}")
        return started

    def stop(self, worker: WorkerProcess, timeout_s: float = 30) -> int:
        """SIGTERM and wait (SIGKILL past `timeout_s`); not restarted. Returns the exit code."""
        self._retire(worker)
        worker.signal(signal.SIGCONT)
        worker.signal(signal.SIGTERM)
        try:
            return worker.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            return worker.process.wait()

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL; the supervisor restarts it, as a fault it was told of."""
        with self._lock:
            self._asked.add(worker.pid)
        worker.signal(signal.SIGKILL)

    def unasked_exits(self) -> list[Exit]:
        return [exit_ for exit_ in self.exits if not exit_.asked]

    def all(self) -> list[WorkerProcess]:
        with self._lock:
            return [*self.retired, *self.running]

    def close(self) -> None:
        """Stop the supervisor, then every worker still running."""
        self._closing.set()
        self._thread.join(5)
        for worker in list(self.running):
            self.stop(worker)

    def _retire(self, worker: WorkerProcess) -> None:
        with self._lock:
            self._asked.add(worker.pid)
            if worker in self.running:
                self.running.remove(worker)
                self.retired.append(worker)

    def _supervise(self) -> None:
        while not self._closing.wait(0.2):
            with self._lock:
                exited = [w for w in self.running if not w.alive()]
            for worker in exited:
                self._replace(worker)

    def _replace(self, worker: WorkerProcess) -> None:
        """Note the exit, wait the restart policy's delay, start another in its place."""
        with self._lock:
            asked = worker.pid in self._asked
            self.exits.append(
                Exit(
                    worker.name,
                    worker.process.returncode,
                    time.monotonic(),
                    asked,
                    worker.log_tail(),
                )
            )
            self._retire(worker)
            ran_s = time.monotonic() - worker.started_at
            settled = ran_s > STABLE_AFTER_S  # a worker that ran a while is no crash loop
            streak = 0 if asked or settled else self._restarts.get(worker.pid, 0) + 1
        delay = RESTART_DELAYS_S[min(streak, len(RESTART_DELAYS_S) - 1)] if streak else 0.0
        if self._closing.wait(delay):
            return
        try:
            self.start(wait=False, streak=streak)
        except OSError:
            return  # the machine refuses a process: the case's oracles will say what is missing
