"""`streamproc worker`: the stream worker. Faust is heavy, so it loads only when this runs."""

from __future__ import annotations

import argparse

from streamproc.cli.common import Subcommands
from streamproc.config.settings import Settings


def register(commands: Subcommands) -> None:
    worker = commands.add_parser("worker", help="run the stream worker (Faust agents)")
    worker.set_defaults(command=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streamproc.worker.main import run_worker  # Faust is heavy: load it only for the worker

    run_worker(settings)
    return 0
