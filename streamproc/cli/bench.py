"""`streamproc bench`: runs the full-pipeline benchmark, which lives in a clone, not the package."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from streamproc.cli.common import Subcommands
from streamproc.config.settings import Settings
from streamproc.errors import ConfigError


def register(commands: Subcommands) -> None:
    bench = commands.add_parser(
        "bench",
        help="the full-pipeline benchmark on the running stack (from a clone: writes "
        "BENCHMARKS.md); options after it go to benchmarks/pipeline_bench.py",
    )
    bench.add_argument("options", nargs=argparse.REMAINDER)
    bench.set_defaults(command=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """The benchmarks live beside the package in a clone, not in the installed package."""
    if not Path("benchmarks/pipeline_bench.py").is_file():
        raise ConfigError("streamproc bench runs from a clone of the repository (its root)")
    command = [sys.executable, "-m", "benchmarks.pipeline_bench", *args.options]
    return subprocess.run(command, check=False).returncode  # noqa: S603 - our own module
