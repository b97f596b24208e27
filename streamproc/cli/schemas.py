"""`streamproc schemas check`: every Avro schema parses, and versions stay backward compatible."""

from __future__ import annotations

import argparse
import sys

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.cli.common import EXIT_FAILURE, Subcommands
from streamproc.config.settings import Settings


def register(commands: Subcommands) -> None:
    schemas = commands.add_parser("schemas", help="Avro schemas in schemas/")
    actions = schemas.add_subparsers(required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", help="parse every schema and check backward compatibility between versions"
    )
    check.set_defaults(command=_check)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    catalog = SchemaCatalog.load(settings.schemas_dir)
    for schema in catalog:
        print(f"ok   {schema.name} v{schema.version}  id {schema.fingerprint_id}  ({schema.path})")
    problems = catalog.check_compatibility()
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return EXIT_FAILURE if problems else 0
