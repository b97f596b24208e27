"""CLI: the `streamproc` command: worker, topics, schemas, generate, run-file, dataset, demo,
features, model."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any

from streamproc.adapters.avro.registry import make_registry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde, SchemaRegistry
from streamproc.adapters.kafka.admin import KafkaAdmin
from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC, model_scope
from streamproc.adapters.kafka.producer import produce_all
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.adapters.redis.stores import RedisFeatureStore, redis_client
from streamproc.core.features.reader import FeatureReader
from streamproc.core.features.state import FeatureValue
from streamproc.errors import ConfigError, InfraError
from streamproc.scenario.river_datasets import (
    declare,
    keyed,
    names,
    stream,
    undeclared,
    write_stream,
)
from streamproc.scenario.shop import (
    GeneratorConfig,
    Scenario,
    generate,
    write_scenario,
)
from streamproc.spec.pipeline import Features, PipelineSpec, load_pipeline
from streamproc.spec.settings import Settings, load_settings
from streamproc.spec.tabular import TabularSpec, load_declaration, load_tabular
from streamproc.spec.topics import Plan, load_topic_specs, plan_changes
from streamproc.stages.feature_step import RecordShape
from streamproc.tools.demo import (
    DemoPlan,
    Encode,
    produce_scenario,
    run_demo,
    summary_lines,
    truth_mismatches,
)
from streamproc.tools.model_admin import ModelControl, report_lines
from streamproc.tools.run_file import run_file, run_tabular_file
from streamproc.tools.score_file import score_file

EXIT_DRIFT = 1
EXIT_CONFIG = 2
EXIT_INFRA = 3

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    try:
        settings = load_settings()
        if command is not _worker:  # Faust sets up the worker's logging
            _log_to_stderr(settings)
        return command(args, settings)
    except ConfigError as exc:
        print(f"streamproc: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except InfraError as exc:
        print(f"streamproc: infrastructure error: {exc}", file=sys.stderr)
        return EXIT_INFRA


def _log_to_stderr(settings: Settings) -> None:
    """A command reports on stdout, so its log shows problems only, unless at debug (the
    default level, info, is the worker's)."""
    level = logging.getLevelName(settings.log_level.upper())
    logging.basicConfig(
        level=level if level == logging.DEBUG else max(level, logging.WARNING),
        format="streamproc: %(levelname)s: %(message)s",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamproc",
        description="Streaming event processing: Kafka + Avro + Faust + Redis + River. "
        "Settings come from STREAMPROC_* environment variables (see README).",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run the stream worker (Faust agents)")
    worker.set_defaults(command=_worker)

    topics = commands.add_parser("topics", help="declared topics: apply or list")
    topic_commands = topics.add_subparsers(required=True, metavar="ACTION")
    apply = topic_commands.add_parser("apply", help="create or update topics from topics/*.yaml")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.set_defaults(command=_topics_apply)
    listing = topic_commands.add_parser("list", help="declared topics and their cluster state")
    listing.set_defaults(command=_topics_list)

    generate = commands.add_parser(
        "generate", help="write the shop-orders scenario's raw events and their ground truth"
    )
    generate.add_argument("--events", type=_positive_int, default=20_000, help="raw records")
    generate.add_argument("--seed", type=int, default=7)
    generate.add_argument("--out", type=Path, required=True, help="events file (JSON lines)")
    generate.add_argument("--to-kafka", action="store_true", help="also produce to the raw topic")
    for rate in ("retry", "resubmission", "guest", "null", "invalid"):
        generate.add_argument(f"--{rate}-rate", type=_share, default=None, metavar="SHARE")
    generate.set_defaults(command=_generate)

    demo = commands.add_parser(
        "demo", help="the reference scenario end to end: generate, produce, clean, summarize"
    )
    demo.add_argument("--events", type=_positive_int, default=20_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--out", type=Path, default=Path("data/demo"), help="folder for its files")
    demo.add_argument(
        "--rate",
        type=float,
        default=1_000.0,
        help="records per second to produce, like a live shop (0: all at once, a backlog)",
    )
    demo.set_defaults(command=_demo)

    run_file = commands.add_parser(
        "run-file", help="run a pipeline's clean stage on a file, without a broker"
    )
    run_file.add_argument("--pipeline", type=Path, default=None, help="default: settings")
    run_file.add_argument(
        "--in", dest="source", type=Path, required=True, help="JSON lines or .avro"
    )
    run_file.add_argument("--out", type=Path, required=True, help="folder for the output files")
    run_file.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="outcomes (JSON lines): also score with the pipeline's models, learning them",
    )
    run_file.set_defaults(command=_run_file)
    _add_dataset_parser(commands)

    features = commands.add_parser("features", help="online features in Redis")
    feature_commands = features.add_subparsers(required=True, metavar="ACTION")
    get = feature_commands.add_parser("get", help="an entity's features, status and age")
    get.add_argument("entities", nargs="+", metavar="ENTITY", help="entity keys")
    get.add_argument(
        "--at", type=int, default=None, help="event time (epoch ms); default: its newest event"
    )
    get.add_argument("--json", action="store_true", help="one JSON object per entity")
    get.set_defaults(command=_features_get)

    model = commands.add_parser("model", help="the deployment's models (STREAMPROC_APP_ID)")
    model_commands = model.add_subparsers(required=True, metavar="ACTION")
    listing = model_commands.add_parser(
        "list", help="newest snapshot: versions, labels learned, quality, champion"
    )
    listing.add_argument("--json", action="store_true", help="the snapshot header as JSON")
    listing.set_defaults(command=_model_list)
    promote = model_commands.add_parser(
        "promote", help="serve this model from now on (pinned: the promotion rule waits)"
    )
    promote.add_argument("name", help="a model declared in the pipeline")
    promote.set_defaults(command=_model_choice, action="promote")
    rollback = model_commands.add_parser("rollback", help="serve the previous champion, pinned")
    rollback.set_defaults(command=_model_choice, action="rollback")
    release = model_commands.add_parser(
        "auto", help="let the promotion rule choose the champion again"
    )
    release.set_defaults(command=_model_choice, action="auto")

    bench = commands.add_parser(
        "bench",
        help="the full-pipeline benchmark on the running stack (from a clone: writes "
        "BENCHMARKS.md); options after it go to benchmarks/pipeline_bench.py",
    )
    bench.add_argument("options", nargs=argparse.REMAINDER)
    bench.set_defaults(command=_bench)

    schemas = commands.add_parser("schemas", help="Avro schemas in schemas/")
    schema_commands = schemas.add_subparsers(required=True, metavar="ACTION")
    check = schema_commands.add_parser(
        "check", help="parse every schema and check backward compatibility between versions"
    )
    check.set_defaults(command=_schemas_check)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a whole number ≥ 1")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a share between 0 and 1")
    return value


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    rates = {
        f"{name}_rate": getattr(args, f"{name}_rate")
        for name in ("retry", "resubmission", "guest", "null", "invalid")
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
            settings.kafka_bootstrap, topic, scenario, _raw_encoder(settings, spec)
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
        bootstrap=settings.kafka_bootstrap,
        raw_topic=topic,
        clean_topic=spec.sink.topic,
        topics_dir=settings.topics_dir,
        work_dir=args.out,
        web_port=settings.web_port,
        redis_url=settings.redis_url,
        features=spec.features,
        show_entity=_busiest_customer(scenario),
        labels_topic=spec.models.labels.topic if spec.models else None,
        pipeline=spec.name,
        per_second=args.rate or None,
    )
    metrics = run_demo(plan, scenario, _raw_encoder(settings, spec), _label_encoder(settings, spec))
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
    return EXIT_DRIFT if problems else 0


def _raw_encoder(settings: Settings, spec: PipelineSpec) -> Encode:
    """Encodes a raw record as a producer would: wire format, the source topic's schema."""
    return _encoder(settings, spec.source.topic, spec.source.schema_name)


def _label_encoder(settings: Settings, spec: PipelineSpec) -> Encode | None:
    labels = spec.models.labels if spec.models else None
    return _encoder(settings, labels.topic, labels.schema_name) if labels else None


def _encoder(settings: Settings, topic: str, schema: str) -> Encode:
    catalog = SchemaCatalog.load(settings.schemas_dir)
    serde = AvroSerde(catalog, _registry(settings, catalog))
    return lambda record: serde.encode(topic, schema, record)


def _busiest_customer(scenario: Scenario) -> str | None:
    orders = Counter(
        str(event["customer_id"])
        for event, truth in zip(scenario.events, scenario.truth, strict=True)
        if truth.kind == "order" and event.get("customer_id")
    )
    return orders.most_common(1)[0][0] if orders else None


def _run_file(args: argparse.Namespace, settings: Settings) -> int:
    if isinstance(load_declaration(args.pipeline or settings.pipeline), TabularSpec):
        return _run_tabular_file(args, settings)
    spec = load_pipeline(args.pipeline or settings.pipeline)
    catalog = SchemaCatalog.load(settings.schemas_dir)
    key = settings.pii_key.get_secret_value().encode()
    summary = asyncio.run(run_file(spec, catalog, key, args.source, args.out))
    print(
        f"read {summary.read}: {summary.clean} clean, {summary.duplicates} duplicates, "
        f"{summary.rejected} rejected"
    )
    for path in summary.files:
        print(f"wrote {path}")
    if args.labels is not None:
        if spec.models is None:
            raise ConfigError(f"--labels: {args.pipeline or settings.pipeline} declares no models")
        report = score_file(spec.models, args.out, args.labels)
        _print_models(report, args.out)
    return 0


def _print_models(report: dict[str, Any], out: Path) -> None:
    for name, card in report["models"].items():
        champion = " (champion)" if name == report["champion"] else ""
        print(
            f"model {name}{champion}: rolling ROC AUC {card['roc_auc']:.4f}, "
            f"log loss {card['log_loss']:.4f}, {card['learned']} labels learned"
        )
    print(f"wrote {out / 'predictions.jsonl'} and {out / 'models.json'}")


def _run_tabular_file(args: argparse.Namespace, settings: Settings) -> int:
    """run-file for kind: tabular: records as they are, features if declared, models."""
    catalog = SchemaCatalog.load(settings.schemas_dir)
    path = args.pipeline or settings.pipeline
    spec, models = load_tabular(path, lambda name: catalog.latest(name).definition)
    summary = asyncio.run(run_tabular_file(spec, catalog, args.source, args.out))
    print(
        f"read {summary.read}: {summary.clean} fit {spec.source.schema_name}, "
        f"{summary.rejected} rejected"
    )
    for written in summary.files:
        print(f"wrote {written}")
    if args.labels is not None:
        if models is None:
            raise ConfigError(f"--labels: {path} declares no models")
        shape = RecordShape(spec.event_id, spec.time, spec.entity_key, "probability")
        _print_models(score_file(models, args.out, args.labels, shape), args.out)
    return 0


def _add_dataset_parser(commands: Any) -> None:
    dataset = commands.add_parser(
        "dataset",
        help="stream a binary-classification dataset bundled with River as events and "
        "immediate labels",
    )
    dataset.add_argument("name", help=f"one of {', '.join(names())} (any case)")
    dataset.add_argument(
        "--out", type=Path, required=True, help="events file (JSON lines); labels beside it"
    )
    dataset.add_argument(
        "--to-kafka", action="store_true", help="also produce the events and labels (Avro)"
    )
    dataset.add_argument(
        "--declare",
        action="store_true",
        help="also write its Avro schemas, topics and a tabular pipeline, derived from the rows, "
        "into the schemas, topics and pipelines folders (files already there are kept)",
    )
    dataset.add_argument(
        "--pipeline", type=Path, default=None, help="default: pipelines/<name>.yaml"
    )
    dataset.set_defaults(command=_dataset)


def _dataset(args: argparse.Namespace, settings: Settings) -> int:
    rows = stream(args.name)
    for path in write_stream(rows, args.out):
        print(f"wrote {path}")
    folders = {
        "schemas": settings.schemas_dir,
        "topics": settings.topics_dir,
        "pipelines": settings.pipeline.parent,
    }
    if args.declare:
        for path, written in declare(rows, folders):
            print(f"{'wrote' if written else 'kept'} {path}")
    if not args.to_kafka:
        return 0
    if args.pipeline is None and (missing := undeclared(rows, folders)):
        raise ConfigError(
            f"--to-kafka: {rows.dataset.name} has no {', '.join(map(str, missing))}; "
            "add --declare to derive them from its rows, then `streamproc topics apply`"
        )
    path = args.pipeline or folders["pipelines"] / rows.dataset.pipeline
    catalog = SchemaCatalog.load(settings.schemas_dir)
    spec, models = load_tabular(path, lambda name: catalog.latest(name).definition)
    if models is None:
        raise ConfigError(f"{path}: declares no models, so no labels topic to produce to")
    admin = KafkaAdmin(settings.kafka_bootstrap, timeout_s=settings.kafka_timeout_s)
    absent = {spec.source.topic, models.labels.topic} - set(admin.list_topic_names())
    if absent:  # the broker does not create topics: records would wait, then fail
        raise ConfigError(
            f"--to-kafka: no topic {', '.join(sorted(absent))} on {settings.kafka_bootstrap}; "
            "`streamproc topics apply` creates the declared ones"
        )
    serde = AvroSerde(catalog, _registry(settings, catalog))
    for ref, records in ((spec.source, rows.events), (models.labels, rows.labels)):
        topic, schema = ref.topic, ref.schema_name
        encoded = keyed(records, functools.partial(serde.encode, topic, schema))
        print(f"produced {produce_all(settings.kafka_bootstrap, topic, encoded)} to {topic}")
    return 0


def _features_get(args: argparse.Namespace, settings: Settings) -> int:
    spec = load_pipeline(settings.pipeline)
    vectors = asyncio.run(_read_features(settings, spec.features, args.entities, args.at))
    for entity, features in vectors.items():
        if args.json:
            as_dicts = {name: feature._asdict() for name, feature in features.items()}
            print(json.dumps({"entity": entity, "features": as_dicts}))
            continue
        print(entity)
        for name, feature in features.items():
            age = "" if feature.age_ms is None else f"{feature.age_ms / 1000:,.0f} s"
            print(f"  {name:<28} {feature.value!s:>24}  {feature.status:<8} {age}")
    return 0


async def _read_features(
    settings: Settings, features: Features, entities: list[str], at_ms: int | None
) -> dict[str, dict[str, FeatureValue]]:
    client = redis_client(settings.redis_url, settings.redis_cluster)
    try:
        store = RedisFeatureStore(client, f"{settings.redis_namespace}:features")
        reader = FeatureReader(features, store)
        return await reader.get_many(entities, int(time.time() * 1000), at_ms)
    finally:
        await client.aclose()


def _model_control(settings: Settings) -> ModelControl:
    spec = load_pipeline(settings.pipeline)
    if spec.models is None:
        raise ConfigError(f"{settings.pipeline}: the pipeline declares no models")
    topic = SnapshotTopic(settings.kafka_bootstrap, SNAPSHOTS_TOPIC, settings.kafka_timeout_s)
    return ModelControl(topic, model_scope(settings.app_id, spec.name), spec.models)


def _model_list(args: argparse.Namespace, settings: Settings) -> int:
    with closing(_model_control(settings)) as control:
        report = control.report()
    if args.json:
        choice = None if report.choice is None else asdict(report.choice)
        print(json.dumps({"scope": report.scope, "snapshot": report.snapshot, "choice": choice}))
    else:
        print("\n".join(report_lines(report)))
    return 0


def _model_choice(args: argparse.Namespace, settings: Settings) -> int:
    with closing(_model_control(settings)) as control:
        if args.action == "promote":
            choice = control.promote(args.name)
        elif args.action == "rollback":
            choice = control.rollback()
        else:
            choice = control.release()
    pinned = "pinned" if choice.pinned else "the promotion rule may replace it"
    print(f"champion: {choice.champion} ({pinned}); workers switch within a few seconds")
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    """The benchmarks live beside the package in a clone, not in the installed package."""
    if not Path("benchmarks/pipeline_bench.py").is_file():
        raise ConfigError("streamproc bench runs from a clone of the repository (its root)")
    command = [sys.executable, "-m", "benchmarks.pipeline_bench", *args.options]
    return subprocess.run(command, check=False).returncode  # noqa: S603 - our own module


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streamproc.worker.app import run_worker  # Faust is heavy: load it only for the worker

    run_worker(settings)
    return 0


def _topics_apply(args: argparse.Namespace, settings: Settings) -> int:
    specs = load_topic_specs(settings.topics_dir)
    admin = KafkaAdmin(settings.kafka_bootstrap, timeout_s=settings.kafka_timeout_s)
    plan = plan_changes(specs, admin.read_state(specs))
    _print_plan(plan)
    if plan.has_changes and not args.dry_run:
        admin.apply(plan)
        print(f"applied: {len(plan.create)} created, {len(plan.alter)} reconfigured")
    for problem in plan.drift:
        print(f"drift (not fixed): {problem}", file=sys.stderr)
    return EXIT_DRIFT if plan.drift else 0


def _print_plan(plan: Plan) -> None:
    if not plan.has_changes:
        print("nothing to change: every declared topic exists as declared")
    for spec in plan.create:
        print(
            f"create {spec.name}: {spec.partitions} partitions, "
            f"replication {spec.replication_factor}, {dict(spec.config)}"
        )
    for name, changes in plan.alter.items():
        for key, (old, new) in changes.items():
            print(f"alter {name}: {key} {old!r} -> {new!r}")


def _topics_list(args: argparse.Namespace, settings: Settings) -> int:
    specs = load_topic_specs(settings.topics_dir)
    admin = KafkaAdmin(settings.kafka_bootstrap, timeout_s=settings.kafka_timeout_s)
    states = admin.read_state(specs)
    print(f"{'topic':<36} {'partitions':>10} {'replicas':>8}  cleanup    retention.ms  status")
    for spec in specs:
        state = states.get(spec.name)
        status = "missing" if state is None else "ok"
        if state is not None and (
            state.partitions != spec.partitions or dict(state.config) != dict(spec.config)
        ):
            status = "differs (topics apply --dry-run)"
        partitions = state.partitions if state else spec.partitions
        replicas = state.replication_factor if state else spec.replication_factor
        print(
            f"{spec.name:<36} {partitions:>10} {replicas:>8}  "
            f"{spec.config['cleanup.policy']:<10} {spec.config['retention.ms']:>12}  {status}"
        )
    undeclared = sorted(set(admin.list_topic_names()) - {spec.name for spec in specs})
    if undeclared:
        print(f"not declared here: {', '.join(undeclared)}")
    return 0


def _schemas_check(args: argparse.Namespace, settings: Settings) -> int:
    catalog = SchemaCatalog.load(settings.schemas_dir)
    for schema in catalog:
        print(f"ok   {schema.name} v{schema.version}  id {schema.fingerprint_id}  ({schema.path})")
    problems = catalog.check_compatibility()
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return EXIT_DRIFT if problems else 0


def _registry(settings: Settings, catalog: SchemaCatalog) -> SchemaRegistry:
    auth = settings.schema_registry_auth
    secret = auth.get_secret_value() if auth is not None else None
    return make_registry(catalog, settings.schema_registry_url, secret)
