"""CLI: the `streamproc` command: worker, topics, schemas."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from streamproc.adapters.kafka import KafkaAdmin
from streamproc.config import Settings, load_settings
from streamproc.errors import ConfigError, InfraError
from streamproc.schemas import SchemaCatalog
from streamproc.topology import Plan, load_topic_specs, plan_changes

EXIT_DRIFT = 1
EXIT_CONFIG = 2
EXIT_INFRA = 3

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Command = args.command
    try:
        return command(args, load_settings())
    except ConfigError as exc:
        print(f"streamproc: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except InfraError as exc:
        print(f"streamproc: infrastructure error: {exc}", file=sys.stderr)
        return EXIT_INFRA


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

    schemas = commands.add_parser("schemas", help="Avro schemas in schemas/")
    schema_commands = schemas.add_subparsers(required=True, metavar="ACTION")
    check = schema_commands.add_parser(
        "check", help="parse every schema and check backward compatibility between versions"
    )
    check.set_defaults(command=_schemas_check)
    return parser


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streamproc.app import run_worker  # Faust is heavy: load it only for the worker

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


if __name__ == "__main__":
    sys.exit(main())
