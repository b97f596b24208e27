"""`streamproc generate` and `streamproc demo`: the shop-orders scenario, written to files, and
run end to end on the stack with its ground truth checked."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from streamproc.cli.common import (
    EXIT_FAILURE,
    Subcommands,
    label_encoder,
    positive_int,
    raw_encoder,
    share,
)
from streamproc.config.pipeline import load_pipeline
from streamproc.config.settings import Settings
from streamproc.scenario.shop import GeneratorConfig, Scenario, generate, write_scenario
from streamproc.tools.demo import (
    DemoPlan,
    produce_scenario,
    run_demo,
    summary_lines,
    truth_mismatches,
)

_RATES = ("retry", "resubmission", "guest", "null", "invalid", "v2")
_RATE_HELP = {
    "v2": "share of records sent by a producer already on shop.OrderSubmitted v2 (default 0)"
}


def register(commands: Subcommands) -> None:
    generating = commands.add_parser(
        "generate", help="write the shop-orders scenario's raw events and their ground truth"
    )
    generating.add_argument("--events", type=positive_int, default=20_000, help="raw records")
    generating.add_argument("--seed", type=int, default=7)
    generating.add_argument("--out", type=Path, required=True, help="events file (JSON lines)")
    generating.add_argument("--to-kafka", action="store_true", help="also produce to the raw topic")
    for rate in _RATES:
        generating.add_argument(
            f"--{rate}-rate", type=share, default=None, metavar="SHARE", help=_RATE_HELP.get(rate)
        )
    generating.set_defaults(command=_generate)

    demo = commands.add_parser(
        "demo", help="the reference scenario end to end: generate, produce, clean, summarize"
    )
    demo.add_argument("--events", type=positive_int, default=20_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--out", type=Path, default=Path("data/demo"), help="folder for its files")
    demo.add_argument(
        "--rate",
        type=float,
        default=1_000.0,
        help="records per second to produce, like a live shop (0: all at once, a backlog)",
    )
    demo.set_defaults(command=_demo)


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    rates = {
        f"{name}_rate": getattr(args, f"{name}_rate")
        for name in _RATES
        if getattr(args, f"{name}_rate") is not None
    }
    scenario = generate(GeneratorConfig(events=args.events, seed=args.seed, **rates))
    for path in write_scenario(scenario, args.out):
        print(f"wrote {path}")
    print(f"best achievable ROC AUC (true probabilities): {scenario.bayes_auc:.4f}")
    if args.to_kafka:
        spec = load_pipeline(settings.pipeline)
        topic = spec.source.topic
        sent = produce_scenario(
            settings.kafka_connection(), topic, scenario, raw_encoder(settings, spec)
        )
        print(f"produced {sent} records to {topic}")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    spec = load_pipeline(settings.pipeline)
    scenario = generate(GeneratorConfig(events=args.events, seed=args.seed))
    for path in write_scenario(scenario, args.out / "orders.jsonl"):
        print(f"wrote {path}")
    topic = spec.source.topic
    plan = DemoPlan(
        kafka=settings.kafka_connection(),
        raw_topic=topic,
        clean_topic=spec.sink.topic,
        topics_dir=settings.topics_dir,
        work_dir=args.out,
        web_port=settings.web_port,
        redis_url=settings.redis_url,
        redis_tls=settings.redis_tls(),
        features=spec.features,
        show_entity=_busiest_customer(scenario),
        labels_topic=spec.models.labels.topic if spec.models else None,
        pipeline=spec.name,
        per_second=args.rate or None,
    )
    metrics = run_demo(plan, scenario, raw_encoder(settings, spec), label_encoder(settings, spec))
    print("\n".join(summary_lines(metrics, topic)))
    if spec.models:
        print(
            f"the generator's Bayes-optimal ROC AUC over all orders: {scenario.bayes_auc:.4f} "
            "(on the same orders as the served scores: python -m benchmarks.model_acceptance)"
        )
    predictions = spec.models.predictions.topic if spec.models else None
    problems = truth_mismatches(metrics, scenario, spec.sink.topic, predictions)
    for problem in problems:
        print(f"MISMATCH {problem}", file=sys.stderr)
    if not problems:
        print("every count matches the generator's ground truth")
    return EXIT_FAILURE if problems else 0


def _busiest_customer(scenario: Scenario) -> str | None:
    orders = Counter(
        str(event["customer_id"])
        for event, truth in zip(scenario.events, scenario.truth, strict=True)
        if truth.kind == "order" and event.get("customer_id")
    )
    return orders.most_common(1)[0][0] if orders else None
