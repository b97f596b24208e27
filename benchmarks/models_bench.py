"""Online models on the x vectors the worker serves (reference scenario, seed 7, through
run-file): predict+learn and predict-only cost per event for each declared model and for
ARFClassifier(n_models=10) as a reference; the trainer path (accept, due, learn with served x)
per label; snapshot size and dump/load time; PredictStep.process on batches of 500 with the
Avro codec. Ratios are against build_x measured in the same run. Times are this process's CPU
time (time.process_time), so a busy machine inflates them less; the load average is printed.
No broker, no Redis.

    python -m benchmarks.models_bench [--events N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from river import forest

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.config.pipeline import load_pipeline
from streamproc.core.features.state import FeatureValue
from streamproc.core.learning import build_pipeline, build_x
from streamproc.core.training import Label, ServedX, Trainer, dump_state, load_state
from streamproc.records import Envelope
from streamproc.scenario.shop import GeneratorConfig, generate, write_scenario
from streamproc.stages.feature_step import ServedOrder
from streamproc.stages.predict import PredictStep, ServingModels
from streamproc.tools.run_file import run_file

REPO = Path(__file__).resolve().parents[1]
CLOCK = time.process_time  # CPU time of this process: other load on the machine counts less
BATCH, WARM_UP, MIN_TIMED, ROUNDS, CHECKPOINTS = 500, 1_000, 10_000, 5, (1_000, 10_000)


def _median_us(work: Callable[[], object], count: int, rounds: int = ROUNDS) -> float:
    timings = []
    for _ in range(rounds):
        started = CLOCK()
        work()
        timings.append(CLOCK() - started)
    return statistics.median(timings) / count * 1e6


def _scenario(events: int, spec: Any) -> tuple[list[ServedOrder], list[Label], dict[str, bool]]:
    """The clean orders with the features run-file served them, and the labels."""
    scenario = generate(GeneratorConfig(events=events, seed=7))
    catalog = SchemaCatalog.load(REPO / "schemas")
    with tempfile.TemporaryDirectory() as tmp:
        source, _, _ = write_scenario(scenario, Path(tmp) / "orders.jsonl")
        asyncio.run(run_file(spec, catalog, b"bench-key", source, Path(tmp) / "out"))
        out = Path(tmp) / "out"
        lines = [(out / f"{n}.jsonl").read_text().splitlines() for n in ("clean", "features")]
    served = {
        line["event_id"]: {k: FeatureValue(**v) for k, v in line["features"].items()}
        for line in map(json.loads, lines[1])
    }
    orders = []
    for offset, record in enumerate(map(json.loads, lines[0])):
        envelope = Envelope(spec.sink.topic, 0, offset, None, None, (), record["occurred_at"])
        orders.append(ServedOrder(envelope, record, served.get(record["event_id"], {})))
    truth = {t.event_id: bool(t.is_fraud) for t in scenario.truth if t.kind == "order"}
    labels = [
        Label(o["event_id"], bool(o["is_fraud"]), o["occurred_at"], 0, i)
        for i, o in enumerate(scenario.outcomes)
    ]
    return orders, labels, truth


def _models(xs: list[dict[str, float]], ys: list[bool], named: dict[str, Any]) -> dict[str, Any]:
    """Per model: warm-up, then predict_proba_one + learn_one per event; then predict only."""
    out: dict[str, Any] = {}
    timed = list(range(WARM_UP, len(xs)))
    while len(timed) < MIN_TIMED:
        timed += timed[: MIN_TIMED - len(timed)]
    for name, model in named.items():
        for i in range(WARM_UP):
            model.predict_proba_one(xs[i])
            model.learn_one(xs[i], ys[i])
        scores = [0.5] * len(xs)
        started = CLOCK()
        for i in timed:
            scores[i] = model.predict_proba_one(xs[i]).get(True, 0.5)
            model.learn_one(xs[i], ys[i])
        both = (CLOCK() - started) / len(timed) * 1e6
        started = CLOCK()
        for i in timed:
            model.predict_proba_one(xs[i])
        predict = (CLOCK() - started) / len(timed) * 1e6
        out[name] = {"predict_learn_us": both, "predict_us": predict, "events": len(timed)}
        out[name] |= {"model": model, "scores": scores}
    return out


def _trainer(spec: Any, labels: list[Label], served: dict[str, ServedX]) -> dict[str, Any]:
    """All declared models together, labels in batches of 500, each batch due at once;
    snapshots (outside the timed part) at the checkpoints and at the end."""
    trainer, elapsed, snapshots = Trainer(spec.models), 0.0, []
    marks = [*(c for c in CHECKPOINTS if c < len(labels)), len(labels)]
    for start in range(0, len(labels), BATCH):
        batch = labels[start : start + BATCH]
        started = CLOCK()
        trainer.accept(batch)
        trainer.learn(trainer.due(batch[-1].occurred_at_ms), served, batch[-1].occurred_at_ms)
        elapsed += CLOCK() - started
        if marks and (trainer.state.learned >= marks[0] or start + BATCH >= len(labels)):
            marks = [m for m in marks if m > trainer.state.learned]
            snapshots.append(_snapshot(trainer.state, spec))
    state = trainer.state
    per_label = {"us_per_label": elapsed / len(labels) * 1e6}
    per_label["us_per_learned_label"] = elapsed / max(state.learned, 1) * 1e6
    counts = {"labels": len(labels), "learned": state.learned, "held": len(state.held)}
    return counts | per_label | {"snapshots": snapshots, "state": state}


def _snapshot(state: Any, spec: Any) -> dict[str, Any]:
    data = dump_state(state, spec.name, 1, 0)
    return {
        "learned": state.learned,
        "bytes": len(data),
        "dump_ms": _median_us(lambda: dump_state(state, spec.name, 1, 0), 1) / 1000,
        "load_ms": _median_us(lambda: load_state(data, spec.models), 1) / 1000,
    } | {f"{name}_bytes": len(pickle.dumps(m)) for name, m in state.models.items()}


def _predict_step(spec: Any, orders: list[ServedOrder], state: Any) -> tuple[float, float]:
    """µs per event: PredictStep.process (trained models), and the Avro encode alone."""
    catalog = SchemaCatalog.load(REPO / "schemas")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    step = PredictStep(spec.models, serde)
    step.serving = ServingModels(1, state.champion, dict(state.models), 1)
    batches = [orders[i : i + BATCH] for i in range(0, len(orders), BATCH)]
    results = [step.process(b, now_ms=0) for b in batches]
    if any(r.rejections for r in results):
        raise SystemExit(f"PredictStep rejected orders: {results[0].rejections[:1]}")
    process = _median_us(lambda: [step.process(b, now_ms=0) for b in batches], len(orders))
    topic, schema = spec.models.predictions.topic, spec.models.predictions.schema_name
    records = [serde.decode(p.value, schema) for r in results for p in r.predictions]
    encode = _median_us(lambda: [serde.encode(topic, schema, r) for r in records], len(records))
    return process, encode


def run(events: int) -> dict[str, Any]:
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    if spec.models is None:
        raise SystemExit("pipelines/shop_orders.yaml declares no models")
    inputs = spec.models.inputs
    orders, labels, truth = _scenario(events, spec)
    xs = [build_x(inputs, o.record, o.features) for o in orders]
    ys = [truth.get(o.record["event_id"], False) for o in orders]
    times = [o.record["occurred_at"] for o in orders]
    build_us = _median_us(lambda: [build_x(inputs, o.record, o.features) for o in orders], len(xs))
    rows = {"build_x (baseline)": build_us}
    rows["dict copy of x"] = _median_us(lambda: [dict(x) for x in xs], len(xs))
    declared = {s.name: build_pipeline(s) for s in (spec.models.champion, *spec.models.challengers)}
    models = _models(xs, ys, declared | {"arf10": forest.ARFClassifier(n_models=10, seed=1)})
    for name, found in models.items():
        rows[f"{name} predict+learn"] = found["predict_learn_us"]
        rows[f"{name} predict only"] = found["predict_us"]
    served = {  # as the predict step logs them: x and the models' scores as served
        o.record["event_id"]: ServedX(x, {n: models[n]["scores"][i] for n in declared}, t, 0)
        for i, (o, x, t) in enumerate(zip(orders, xs, times, strict=True))
    }
    trainer = _trainer(spec, labels, served)
    rows["trainer accept+due+learn, per label"] = trainer["us_per_label"]
    process_us, encode_us = _predict_step(spec, orders, trainer.pop("state"))
    rows[f"PredictStep.process, batches of {BATCH}"] = process_us
    rows["  of which: Avro encode of the prediction"] = encode_us
    return {
        "scenario": {"raw_events": events, "clean_orders": len(orders), "labels": len(labels)},
        "timed_events_per_model": models["arf10"]["events"],
        "per_event": {
            name.strip(): {"us": us, "per_s": 1e6 / us, "x_build_x": us / build_us}
            for name, us in rows.items()
        },
        "trainer": {k: v for k, v in trainer.items() if k != "snapshots"},
        "snapshots": trainer["snapshots"],
        "arf10_pickle_bytes": len(pickle.dumps(models["arf10"]["model"])),
        "load": "/".join(f"{load:.1f}" for load in os.getloadavg()),
    }


def report(figures: dict[str, Any]) -> None:
    scenario, trainer = figures["scenario"], figures["trainer"]
    print(
        f"{scenario['raw_events']} raw events (seed 7) → {scenario['clean_orders']} clean orders, "
        f"{scenario['labels']} labels; per model: warm-up {WARM_UP}, "
        f"{figures['timed_events_per_model']} timed events; load average {figures['load']}"
    )
    print(f"{'step':<42} {'µs/event':>9} {'events/s':>10} {'× build_x':>10}")
    for name, row in figures["per_event"].items():
        name = f"  {name}" if name.startswith("of which") else name
        print(f"{name:<42} {row['us']:>9.2f} {row['per_s']:>10,.0f} {row['x_build_x']:>10.2f}")
    learned, labels, held = trainer["learned"], trainer["labels"], trainer["held"]
    print(f"trainer: {learned} of {labels} labels learned, {held} held (no served x yet)")
    snaps = figures["snapshots"]
    names = [k for k in snaps[0] if k.endswith("_bytes")]
    head = f"{'labels learned':>14} {'snapshot B':>11} {'dump ms':>8} {'load ms':>8}"
    print(head + "".join(f" {n.removesuffix('_bytes') + ' B':>10}" for n in names))
    for s in snaps:
        row = f"{s['learned']:>14} {s['bytes']:>11,} {s['dump_ms']:>8.2f} {s['load_ms']:>8.2f}"
        print(row + "".join(f" {s[n]:>10,}" for n in names))
    arf = figures["arf10_pickle_bytes"]
    print(f"arf10 (reference) pickled alone, after its predict+learn run: {arf:,} B")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="raw events to generate")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    figures = run(args.events)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
