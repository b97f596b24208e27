"""A replay's pace: `streamproc replay` rebuilds a new version from a backlog the bench has
already produced, measured as the backlog runs are (from its first raw record read to its
last prediction sent), so that pipeline_bench can set it beside the live worker's rate on the
same records in the same run.

    python -m benchmarks.replay_bench [--events N]   (alone: its own backlog, drained by
                                                      a live worker, then replayed)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka.admin import AdminClient

from benchmarks.clean_worker_bench import BOOTSTRAP, KAFKA, RAW, REDIS_URL, REPO
from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC, forget_models
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.adapters.redis.sweep import delete_namespace

PREDICTIONS = "shop.order_prediction.v1"
TIMEOUT_S = 1_800


def _metric(port: int, name: str, topic: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:  # noqa: S310
            text = page.read().decode()
    except OSError:
        return 0.0
    wanted = f'{name}{{topic="{topic}"}} '
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(wanted))


def replay_rate(since_ms: int, events: int, orders: int) -> float:
    """Events/s of `streamproc replay --from <since_ms>` over a backlog of `events` raw
    records (`orders` of them scored) logged from `since_ms` on."""
    version = f"v{uuid.uuid4().int % 900_000 + 100_000}"  # its topics are new: a new name
    app = f"bench-replay-{version}"
    port = 6190
    work = Path(tempfile.mkdtemp(prefix="streamproc-replay-bench-"))
    env = {
        **os.environ,
        "STREAMPROC_APP_ID": app,
        "STREAMPROC_REDIS_NAMESPACE": app,
        "STREAMPROC_DATA_DIR": str(work),
        "STREAMPROC_LOG_LEVEL": "warning",
    }
    start = datetime.fromtimestamp(since_ms / 1000, UTC).isoformat()
    command = [
        sys.executable,
        "-m",
        "streamproc.cli",
        "replay",
        "--namespace",
        version,
        "--from",
        start,
        "--web-port",
        str(port),
    ]
    replay = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, cwd=REPO)  # noqa: S603
    shadow = f"{PREDICTIONS}.{version}"
    try:
        while _metric(port, "streamproc_records_consumed_total", RAW) == 0:
            if replay.poll() is not None:
                raise SystemExit(
                    f"replay exited {replay.returncode}; its worker's log is in {work}"
                )
            time.sleep(0.05)
        started = time.perf_counter()
        while _metric(port, "streamproc_records_produced_total", shadow) < orders:
            if time.perf_counter() - started > TIMEOUT_S:
                raise SystemExit(f"replay not done in {TIMEOUT_S // 60} minutes")
            time.sleep(0.25)
        return events / (time.perf_counter() - started)
    finally:
        replay.send_signal(signal.SIGINT)
        replay.wait(120)
        _clean_up(app, version)


def _clean_up(app: str, version: str) -> None:
    delete_namespace(REDIS_URL, app)
    snapshots = SnapshotTopic(KAFKA, SNAPSHOTS_TOPIC)
    forget_models(snapshots, f"{app}-{version}/shop_orders")
    snapshots.close()
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    mine = [
        t
        for t in admin.list_topics(timeout=30).topics
        if t.endswith(f".{version}") or f".{version}." in t
    ]
    for done in admin.delete_topics(mine).values() if mine else ():
        done.result(60)


def main() -> None:
    """The backlog drained by the full pipeline at live settings, then replayed: both rates."""
    from benchmarks.pipeline_bench import Roles, backlog_run, produce_backlog  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    catalog = SchemaCatalog.load(REPO / "schemas")
    since_ms = int(time.time() * 1000) - 1000
    _, drained = produce_backlog(KAFKA, AvroSerde(catalog, EmbeddedRegistry(catalog)), args.events)
    live = backlog_run(Roles(1, False, {}), drained, False).rate
    rate = replay_rate(since_ms, drained.events, drained.orders)
    print(
        f"over {drained.events:,} events: live settings {live:,.0f} events/s, replay "
        f"{rate:,.0f} events/s ({rate / live:.2f}x)"
    )


if __name__ == "__main__":
    main()
