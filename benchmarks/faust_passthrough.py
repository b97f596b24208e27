"""A plain Faust agent that forwards raw bytes in batches: the ceiling a Faust worker lives under.

Started by clean_worker_bench as a worker process (`python -m benchmarks.faust_passthrough
worker`), with the same batch size, the same per-record sends and the same acks as the clean
worker, and nothing else. It serves its count at /count.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import faust

from streamproc.config.settings import Settings

SOURCE = os.environ.get("BENCH_SOURCE", "shop.order.v1")
SINK = os.environ.get("BENCH_SINK", "bench.passthrough")
_WORKER = Settings.model_fields  # the worker's batching, so the two compare like for like
BATCH = int(os.environ.get("STREAMPROC_BATCH_SIZE", _WORKER["batch_size"].default))
WITHIN_S = float(os.environ.get("BENCH_FAUST_WITHIN_S", "0.02"))  # take_events' wait


def _tuning() -> dict[str, Any]:
    """Faust settings to try, from BENCH_FAUST_* variables (experiments, not defaults)."""
    tuning: dict[str, Any] = {}
    if os.environ.get("BENCH_FAUST_CYTHON"):
        tuning["cython_optimizations"] = True
    if os.environ.get("BENCH_FAUST_POLL_RECORDS"):
        tuning["broker_max_poll_records"] = int(os.environ["BENCH_FAUST_POLL_RECORDS"])
    return tuning


if os.environ.get("BENCH_FETCH_WAIT_MS"):  # Faust hard-codes aiokafka's 1,500 ms
    import aiokafka

    _init = aiokafka.AIOKafkaConsumer.__init__

    def _init_with_wait(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["fetch_max_wait_ms"] = int(os.environ["BENCH_FETCH_WAIT_MS"])
        _init(self, *args, **kwargs)

    aiokafka.AIOKafkaConsumer.__init__ = _init_with_wait

app = faust.App(
    os.environ["STREAMPROC_APP_ID"],
    broker=f"kafka://{os.environ.get('STREAMPROC_KAFKA_BOOTSTRAP', '127.0.0.1:9092')}",
    store="memory://",
    web_port=int(os.environ["STREAMPROC_WEB_PORT"]),
    datadir=os.environ["STREAMPROC_DATA_DIR"],
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    topic_allow_declare=False,
    topic_disable_leader=True,
    **_tuning(),
)
source = app.topic(SOURCE, key_type=bytes, value_type=bytes, value_serializer="raw")
forwarded = 0


@app.agent(source)
async def passthrough(stream: Any) -> None:
    global forwarded
    async for events in stream.take_events(BATCH, within=WITHIN_S):
        if os.environ.get("BENCH_NO_SEND"):
            forwarded += len(events)
            continue
        pending = [  # the source record's timestamp is kept (as the worker keeps it)
            await app.producer.send(
                SINK, e.message.key, e.message.value, None, e.message.timestamp, None
            )
            for e in events
        ]
        await asyncio.gather(*pending)
        forwarded += len(events)


@app.page("/count")
async def count(web: Any, request: Any) -> Any:
    return web.text(str(forwarded))


if __name__ == "__main__":
    app.main()
