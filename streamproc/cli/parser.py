"""The `streamproc` command: its top-level parser, exit codes and dispatch. Each command group
registers its own subcommands and handlers (cli/topics.py, cli/models.py, ...); shared helpers
are in cli/common.py."""

from __future__ import annotations

import argparse
import logging
import logging.config
import sys
from collections.abc import Sequence

from streamproc.adapters.logs import logging_config
from streamproc.cli import (
    bench,
    data,
    dlq,
    erase,
    features,
    models,
    produce,
    scenario,
    schemas,
    state,
    tail,
    top,
    topics,
    versions,
    worker,
)
from streamproc.cli.common import EXIT_CODES, EXIT_CONFIG, EXIT_FAILURE, EXIT_INFRA, Command
from streamproc.config.settings import Settings, load_settings
from streamproc.errors import ConfigError, InfraError

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_INFRA", "main"]

# In the order the help lists them.
_REGISTERS = (
    worker.register,
    topics.register,
    produce.register,
    tail.register,
    dlq.register,
    scenario.register,
    data.register,
    features.register,
    state.register,
    models.register,
    top.register,
    versions.register,
    bench.register,
    schemas.register,
    erase.register,
)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: Command = args.command
    try:
        settings = load_settings()
        if command is not worker.run:  # Faust sets up the worker's logging
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
    shown = logging.getLevelName(level if level == logging.DEBUG else max(level, logging.WARNING))
    text = "streamproc: %(levelname)s: %(message)s"
    logging.config.dictConfig(logging_config(shown, settings.json_logs, "ext://sys.stderr", text))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamproc",
        description="Streaming event processing: Kafka + Avro + Faust + Redis + River. "
        "Settings come from STREAMPROC_* environment variables (see README).",
        epilog=EXIT_CODES,
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for register in _REGISTERS:
        register(commands)
    return parser
