"""What poison costs: decode + normalize time per message for each class of bad raw order
(tests/poison.py), and the process's RSS over many poison records through the clean stage.

    python -m benchmarks.poison_bench [--repeats 200] [--records 50000]

Times are per message, in µs: the median, the 99th percentile and the maximum of `repeats`
runs (the first run of a class is the cold one: nothing of it cached yet). RSS comes from
/proc/self/status, after one warm-up batch and after `records` poison records (those of up to
1 MB) in batches of 500, each rejection made into its dead letter as the worker does.
Figures, not pass or fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import time
from pathlib import Path

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka import dlq
from streamproc.adapters.memory import InMemorySeenStore, InMemoryUnitStatsStore
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.core.normalize import Normalizer
from streamproc.errors import EventRejected
from streamproc.records import Envelope
from streamproc.stages.clean import CleanStage
from tests.builders import ORDER_SUBMITTED
from tests.poison import MB, POISON, RAW_TOPIC, Wire

REPO = Path(__file__).resolve().parents[1]
BATCH = 500


def _decode_and_normalize_us(
    serde: AvroSerde, normalizer: Normalizer, value: bytes | None, repeats: int
) -> list[float]:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        with contextlib.suppress(EventRejected):
            normalizer.normalize(serde.decode(value, ORDER_SUBMITTED))
        timings.append((time.perf_counter() - started) * 1e6)
    return timings


def _per_class(serde: AvroSerde, spec: PipelineSpec, wire: Wire, repeats: int) -> None:
    normalizer = Normalizer(spec, b"bench-key")
    print(f"{'class':36} {'bytes':>10} {'median µs':>10} {'p99 µs':>10} {'max µs':>10}")
    for case in POISON:
        value = case.build(wire)
        runs = max(repeats // 10, 5) if value is not None and len(value) > MB else repeats
        timings = sorted(_decode_and_normalize_us(serde, normalizer, value, runs))
        p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
        size = 0 if value is None else len(value)
        median = statistics.median(timings)
        print(f"{case.name:36} {size:>10,} {median:>10.1f} {p99:>10.1f} {timings[-1]:>10.1f}")


def _rss_kb() -> tuple[int, int]:
    """The resident set and its high-water mark, in kB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def _rss_over(serde: AvroSerde, spec: PipelineSpec, wire: Wire, records: int) -> None:
    """Poison records through the clean stage, the 10 MB ones left out (they are measured
    above, alone; a topic takes 1 MB by default): does memory grow with their number?"""
    built = (case.build(wire) for case in POISON)
    values = [value for value in built if value is None or len(value) <= MB]
    stage = CleanStage(spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"bench-key")
    stream = zip(itertools.count(), itertools.cycle(values), strict=False)

    async def one_batch() -> int:
        batch = [Envelope(RAW_TOPIC, 0, offset, b"k", value) for offset, value in
                 itertools.islice(stream, BATCH)]  # fmt: skip
        result = await stage.process(batch)
        for rejection in result.rejections:
            dlq.dead_letter(rejection)
        return len(result.rejections)

    await one_batch()
    before, _ = _rss_kb()
    started, rejected = time.perf_counter(), 0
    for _ in range(records // BATCH):
        rejected += await one_batch()
    seconds = time.perf_counter() - started
    after, high_water = _rss_kb()
    done = records // BATCH * BATCH
    print(
        f"\n{done:,} poison records through the clean stage ({rejected:,} dead letters) in "
        f"{seconds:.1f} s, {seconds / done * 1e6:.1f} µs each: RSS {before / 1024:.1f} → "
        f"{after / 1024:.1f} MiB ({(after - before) / 1024:+.1f}), high-water "
        f"{high_water / 1024:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200, help="runs per class")
    parser.add_argument("--records", type=int, default=50_000, help="records for the RSS run")
    args = parser.parse_args()
    catalog = SchemaCatalog.load(REPO / "schemas")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    wire = Wire(serde, catalog)
    _per_class(serde, spec, wire, args.repeats)
    asyncio.run(_rss_over(serde, spec, wire, args.records))


if __name__ == "__main__":
    main()
