"""The models' acceptance on the real broker and Redis: the reference scenario through the
demo's worker, labels produced with the orders (delayed, interleaved in event time), then
the champion's ROC AUC on the scores it served against the Bayes-optimal AUC (the
generator's true probabilities) on the same orders; with `--without-features`, the same
model with every online feature removed from its inputs, for contrast.

    python -m benchmarks.model_acceptance --events 20000 [--without-features]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml
from confluent_kafka import Consumer, TopicPartition

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets
from streamproc.config.pipeline import load_pipeline
from streamproc.config.settings import load_settings
from streamproc.scenario.shop import GeneratorConfig, generate, roc_auc
from streamproc.tools.demo import DemoPlan, run_demo

IDLE_S = 5  # the predictions are all read once none came for this long


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=1_000.0)
    parser.add_argument("--without-features", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    work = Path(tempfile.mkdtemp(prefix="streamproc-acceptance-"))
    pipeline = _pipeline(settings.pipeline, work, args.without_features)
    os.environ["STREAMPROC_PIPELINE"] = str(pipeline)  # the demo's worker reads it
    spec = load_pipeline(pipeline)
    if spec.models is None:
        raise SystemExit(f"{pipeline}: the pipeline declares no models")
    catalog = SchemaCatalog.load(settings.schemas_dir)
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    scenario = generate(GeneratorConfig(events=args.events, seed=args.seed))
    labels = spec.models.labels
    predictions_topic = spec.models.predictions.topic
    start = end_offsets(settings.kafka_connection(), predictions_topic)
    plan = DemoPlan(
        kafka=settings.kafka_connection(),
        raw_topic=spec.source.topic,
        clean_topic=spec.sink.topic,
        topics_dir=settings.topics_dir,
        work_dir=work,
        web_port=settings.web_port,
        redis_url=settings.redis_url,
        features=spec.features,
        labels_topic=labels.topic,
        pipeline=spec.name,
        per_second=args.rate or None,
    )
    run_demo(
        plan,
        scenario,
        lambda e: serde.encode(spec.source.topic, spec.source.schema_name, e),
        lambda o: serde.encode(labels.topic, labels.schema_name, o),
    )
    served = _served(
        settings.kafka_bootstrap, start, serde, {o["event_id"] for o in scenario.outcomes}
    )
    truth = {t.event_id: t for t in scenario.truth if t.kind == "order"}
    occurred = {e: t.canonical["occurred_at_ms"] for e, t in truth.items() if t.canonical}
    labelled = sorted((e for e in served if e in occurred), key=occurred.__getitem__)
    second_half = labelled[len(labelled) // 2 :]
    fraud = [bool(truth[e].is_fraud) for e in second_half]
    model_auc = roc_auc([served[e] for e in second_half], fraud)
    bayes_auc = roc_auc([truth[e].fraud_probability or 0.0 for e in second_half], fraud)
    inputs = "without online features" if args.without_features else "with online features"
    print(
        f"{args.events} orders (seed {args.seed}), {len(labelled)} labelled orders scored; "
        f"second half in event time ({len(second_half)} orders):\n"
        f"  champion {spec.models.champion.name} {inputs}: ROC AUC {model_auc:.4f}\n"
        f"  Bayes-optimal (true probabilities):         ROC AUC {bayes_auc:.4f}\n"
        f"  gap {bayes_auc - model_auc:.4f}"
    )


def _pipeline(path: Path, work: Path, without_features: bool) -> Path:
    if not without_features:
        return path.resolve()
    declared = yaml.safe_load(path.read_text())
    spec = load_pipeline(path)
    features = {name for view in spec.features.views for name in view.feature_names()}
    inputs = declared["models"]["inputs"]
    for kind in ("numeric", "log", "boolean", "present", "categorical"):
        inputs[kind] = [name for name in inputs.get(kind, []) if name not in features]
    inputs["matches"] = {
        name: pair for name, pair in inputs.get("matches", {}).items() if not set(pair) & features
    }
    variant = work / "pipeline_without_features.yaml"
    variant.write_text(yaml.safe_dump(declared))
    return variant


def _served(
    bootstrap: str, start: list[TopicPartition], serde: AvroSerde, wanted: set[str]
) -> dict[str, float]:
    """The champion's served probability per order of this run."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "acceptance", "enable.auto.commit": False}
    )
    consumer.assign(start)
    scores: dict[str, float] = {}
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < IDLE_S:
            messages = consumer.consume(1000, timeout=0.5)
            if messages:
                idle_since = time.monotonic()
            for message in messages:
                record = serde.decode(message.value(), "shop.OrderPrediction")
                if record["event_id"] in wanted:
                    scores.setdefault(record["event_id"], record["fraud_probability"])
    finally:
        consumer.close()
    return scores


if __name__ == "__main__":
    main()
