"""`streamproc topics apply|list`: the declared topics against the cluster."""

from __future__ import annotations

import argparse
import sys

from streamproc.adapters.kafka.admin import KafkaAdmin
from streamproc.cli.common import EXIT_FAILURE, Subcommands
from streamproc.config.settings import Settings
from streamproc.config.topics import Plan, load_topic_specs, plan_changes


def register(commands: Subcommands) -> None:
    topics = commands.add_parser("topics", help="declared topics: apply or list")
    actions = topics.add_subparsers(required=True, metavar="ACTION")
    apply = actions.add_parser("apply", help="create or update topics from topics/*.yaml")
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.set_defaults(command=_apply)
    listing = actions.add_parser("list", help="declared topics and their cluster state")
    listing.set_defaults(command=_list)


def _apply(args: argparse.Namespace, settings: Settings) -> int:
    specs = load_topic_specs(settings.topics_dir)
    admin = KafkaAdmin(settings.kafka_connection(), timeout_s=settings.kafka_timeout_s)
    plan = plan_changes(specs, admin.read_state(specs))
    _print_plan(plan)
    if plan.has_changes and not args.dry_run:
        admin.apply(plan)
        print(f"applied: {len(plan.create)} created, {len(plan.alter)} reconfigured")
    for problem in plan.drift:
        print(f"drift (not fixed): {problem}", file=sys.stderr)
    return EXIT_FAILURE if plan.drift else 0


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


def _list(args: argparse.Namespace, settings: Settings) -> int:
    specs = load_topic_specs(settings.topics_dir)
    admin = KafkaAdmin(settings.kafka_connection(), timeout_s=settings.kafka_timeout_s)
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
