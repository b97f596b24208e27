"""`streamproc run-file` and `streamproc dataset`: a pipeline run on a file without a broker, and
a River dataset written as events and labels (optionally declared and produced to Kafka)."""

from __future__ import annotations

import argparse
import asyncio
import functools
from pathlib import Path
from typing import Any

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.producer import produce_all
from streamproc.cli.common import Subcommands, registry, require_topics
from streamproc.config.pipeline import load_pipeline
from streamproc.config.settings import Settings
from streamproc.config.tabular import TabularSpec, load_declaration, load_tabular
from streamproc.errors import ConfigError
from streamproc.scenario.river_datasets import (
    declare,
    keyed,
    names,
    stream,
    undeclared,
    write_stream,
)
from streamproc.stages.feature_step import RecordShape
from streamproc.tools.run_file import run_file, run_tabular_file
from streamproc.tools.score_file import score_file


def register(commands: Subcommands) -> None:
    running = commands.add_parser(
        "run-file", help="run a pipeline's clean stage on a file, without a broker"
    )
    running.add_argument("--pipeline", type=Path, default=None, help="default: settings")
    running.add_argument(
        "--in", dest="source", type=Path, required=True, help="JSON lines or .avro"
    )
    running.add_argument("--out", type=Path, required=True, help="folder for the output files")
    running.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="outcomes (JSON lines): also score with the pipeline's models, learning them",
    )
    running.set_defaults(command=_run_file)

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


def _print_models(report: dict[str, Any], out: Path) -> None:
    for name, card in report["models"].items():
        champion = " (champion)" if name == report["champion"] else ""
        print(
            f"model {name}{champion}: rolling ROC AUC {card['roc_auc']:.4f}, "
            f"log loss {card['log_loss']:.4f}, {card['learned']} labels learned"
        )
    print(f"wrote {out / 'predictions.jsonl'} and {out / 'models.json'}")


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
    require_topics(settings, {spec.source.topic, models.labels.topic}, "--to-kafka: ")
    serde = AvroSerde(catalog, registry(settings, catalog))
    for ref, records in ((spec.source, rows.events), (models.labels, rows.labels)):
        topic, schema = ref.topic, ref.schema_name
        encoded = keyed(records, functools.partial(serde.encode, topic, schema))
        print(f"produced {produce_all(settings.kafka_connection(), topic, encoded)} to {topic}")
    return 0
