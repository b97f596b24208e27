"""`streamproc model list|promote|rollback|auto`: the deployment's models and its champion."""

from __future__ import annotations

import argparse
import json
from contextlib import closing
from dataclasses import asdict

from streamproc.adapters.kafka.model_snapshots import SNAPSHOTS_TOPIC, model_scope
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.cli.common import Subcommands
from streamproc.config.pipeline import load_pipeline
from streamproc.config.settings import Settings
from streamproc.errors import ConfigError
from streamproc.tools.model_admin import ModelControl, report_lines


def register(commands: Subcommands) -> None:
    model = commands.add_parser("model", help="the deployment's models (STREAMPROC_APP_ID)")
    actions = model.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="newest snapshot: versions, labels learned, quality, champion"
    )
    listing.add_argument("--json", action="store_true", help="the snapshot header as JSON")
    listing.set_defaults(command=_list)
    promote = actions.add_parser(
        "promote", help="serve this model from now on (pinned: the promotion rule waits)"
    )
    promote.add_argument("name", help="a model declared in the pipeline")
    promote.set_defaults(command=_choose, action="promote")
    rollback = actions.add_parser("rollback", help="serve the previous champion, pinned")
    rollback.set_defaults(command=_choose, action="rollback")
    release = actions.add_parser("auto", help="let the promotion rule choose the champion again")
    release.set_defaults(command=_choose, action="auto")


def _control(settings: Settings) -> ModelControl:
    spec = load_pipeline(settings.pipeline)
    if spec.models is None:
        raise ConfigError(f"{settings.pipeline}: the pipeline declares no models")
    topic = SnapshotTopic(settings.kafka_connection(), SNAPSHOTS_TOPIC, settings.kafka_timeout_s)
    return ModelControl(topic, model_scope(settings.deployment().group, spec.name), spec.models)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    with closing(_control(settings)) as control:
        report = control.report()
    if args.json:
        choice = None if report.choice is None else asdict(report.choice)
        print(json.dumps({"scope": report.scope, "snapshot": report.snapshot, "choice": choice}))
    else:
        print("\n".join(report_lines(report)))
    return 0


def _choose(args: argparse.Namespace, settings: Settings) -> int:
    with closing(_control(settings)) as control:
        if args.action == "promote":
            choice = control.promote(args.name)
        elif args.action == "rollback":
            choice = control.rollback()
        else:
            choice = control.release()
    pinned = "pinned" if choice.pinned else "the promotion rule may replace it"
    print(f"champion: {choice.champion} ({pinned}); workers switch within a few seconds")
    return 0
