"""The worker's batch path with no work: the same consumer, channels, agents, in-flight acks and
producer as `streamproc worker`, forwarding raw records to a sink and nothing else. Its rate
is the ceiling of a worker (what the framework and I/O cost, without our stages); it serves
its count at /count.

    python -m benchmarks.batch_passthrough     (settings from STREAMPROC_*, as a worker)
"""

from __future__ import annotations

import os
from typing import Any

import mode.loop

from streamproc.adapters.kafka.batch_flow import Complete
from streamproc.config.settings import load_settings
from streamproc.records import Envelope, OutRecord
from streamproc.worker.app import faust_worker, serve_batches, worker_app
from streamproc.worker.main import tune_gc
from streamproc.worker.wiring import batch_sender

SOURCE = os.environ.get("BENCH_SOURCE", "shop.order.v1")
SINK = os.environ.get("BENCH_SINK", "bench.passthrough")


def main() -> None:
    settings = load_settings()
    mode.loop.use("uvloop")
    app = worker_app(settings)
    sender = batch_sender(settings, {})
    forwarded = 0

    async def forward(batch: list[Envelope]) -> Complete:
        outputs = [OutRecord(SINK, e.key, e.value, (), e.timestamp_ms) for e in batch]
        submitted = await sender.submit(outputs)

        async def complete() -> None:
            nonlocal forwarded
            await submitted.refused()
            forwarded += len(batch)

        return complete

    serve_batches(app, settings, {SOURCE: forward}, sender)

    @app.page("/count")
    async def count(web: Any, request: Any) -> Any:
        return web.text(str(forwarded))

    tune_gc()
    faust_worker(app, settings.log_level, settings.json_logs).execute_from_commandline()


if __name__ == "__main__":
    main()
