"""The worker's hot path in one process, without Faust, Kafka or Redis: CPU µs per event for
each stage (clean, features, predict, served-x encoding), on the scenario's raw records in
batches of 500, with the in-memory stores and the worker's garbage-collector settings. The
baseline in the same run is a bare fastavro decode of the same bytes. Use it to see what a
change to the hot path gives; the real-stack figures come from pipeline_bench.

    python -m benchmarks.hotpath_bench [--events N] [--repeat R] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from dataclasses import dataclass

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.memory import (
    InMemoryFeatureStore,
    InMemorySeenStore,
    InMemoryServedLog,
    InMemoryUnitStatsStore,
)
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.core.features.stage import FeatureStage
from streamproc.records import Envelope
from streamproc.scenario.shop import GeneratorConfig, generate, producer_key
from streamproc.stages.clean import CleanStage
from streamproc.stages.feature_step import FeatureStep
from streamproc.stages.predict import PredictStep
from streamproc.stages.scored import ScoredChain
from streamproc.worker.main import tune_gc
from tests.conftest import REPO

BATCH = 500
RAW, SCHEMA = "shop.order.v1", "shop.OrderSubmitted"


@dataclass
class Stages:
    """Seconds in each stage of the hot path, summed over the batches."""

    clean: float = 0.0
    features: float = 0.0
    predict: float = 0.0
    served_x: float = 0.0

    def total(self) -> float:
        return self.clean + self.features + self.predict + self.served_x


def _raw_batches(events: int, serde: AvroSerde) -> list[list[Envelope]]:
    scenario = generate(GeneratorConfig(events=events, seed=5, customers=max(2_000, events // 10)))
    envelopes = [
        Envelope(RAW, 0, offset, producer_key(e), serde.encode(RAW, SCHEMA, e), (), offset)
        for offset, e in enumerate(scenario.events)
    ]
    return [envelopes[i : i + BATCH] for i in range(0, len(envelopes), BATCH)]


async def _run(spec: PipelineSpec, serde: AvroSerde, batches: list[list[Envelope]]) -> Stages:
    """One pass over the batches with new stores; seconds per stage."""
    if spec.models is None:
        raise SystemExit("the reference pipeline declares models")
    consumed = spec.models.inputs.names()  # as the worker serves: what x is built from
    clean_stage = CleanStage(
        spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"bench-key"
    )
    chain = ScoredChain(  # the worker's chain, with memory stores and a fixed clock
        FeatureStep.of_clean_orders(
            spec, serde, FeatureStage(spec.features, InMemoryFeatureStore(), serve=consumed)
        ),
        PredictStep(spec.models, serde),
        InMemoryServedLog(),
        clock_ms=lambda: 0,
    )
    stages = Stages()
    clean_offset = 0
    for batch in batches:
        started = time.perf_counter()
        cleaned = await clean_stage.process(batch)
        stages.clean += time.perf_counter() - started
        envelopes = [
            Envelope(out.topic, 0, clean_offset + i, out.key, out.value, out.headers, 0)
            for i, out in enumerate(cleaned.clean)
        ]
        clean_offset += len(envelopes)
        seconds = (await chain.process(envelopes)).seconds
        stages.features += seconds["features"]
        stages.predict += seconds["predict"]
        stages.served_x += seconds["served_x"]
    return stages


def _decode_baseline(serde: AvroSerde, batches: list[list[Envelope]]) -> float:
    started = time.perf_counter()
    for batch in batches:
        for envelope in batch:
            serde.decode(envelope.value, SCHEMA)
    return time.perf_counter() - started


def events_per_s(events: int = 20_000, repeat: int = 3) -> float:
    """The in-process hot path's rate on one core (best of `repeat` passes): the same stages
    as the worker, with in-memory stores and no Kafka."""
    catalog = SchemaCatalog.load(REPO / "schemas")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    batches = _raw_batches(events, serde)
    tune_gc()
    best = min((asyncio.run(_run(spec, serde, batches)) for _ in range(repeat)), key=Stages.total)
    return sum(len(b) for b in batches) / best.total()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of R passes")
    parser.add_argument("--profile", action="store_true", help="cProfile one pass")
    args = parser.parse_args()
    catalog = SchemaCatalog.load(REPO / "schemas")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    batches = _raw_batches(args.events, serde)
    tune_gc()  # as the worker does
    count = sum(len(b) for b in batches)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(asyncio.run, _run(spec, serde, batches))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    decode = min(_decode_baseline(serde, batches) for _ in range(args.repeat))
    passes = (asyncio.run(_run(spec, serde, batches)) for _ in range(args.repeat))
    stages = min(passes, key=Stages.total)
    print(f"{count} raw events, batches of {BATCH}, best of {args.repeat}; µs per raw event")
    print(f"{'fastavro decode (baseline)':<28} {decode / count * 1e6:8.1f}")
    for name in ("clean", "features", "predict", "served_x"):
        seconds = getattr(stages, name)
        print(f"{name:<28} {seconds / count * 1e6:8.1f} {seconds / decode:7.1f}× decode")
    total = stages.total()
    print(f"{'hot path':<28} {total / count * 1e6:8.1f} {total / decode:7.1f}× decode")
    print(f"{'events/s on one core':<28} {count / total:8,.0f}")


if __name__ == "__main__":
    main()
