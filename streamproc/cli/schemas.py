"""`streamproc schemas check`: every Avro schema parses, versions stay backward compatible, and
a candidate version is checked before it is added, by the registry too when one is configured."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streamproc.adapters.avro.registry import ConfluentRegistry, RegistryVerdict
from streamproc.adapters.avro.schemas import SchemaCatalog, SchemaVersion, load_schema_file
from streamproc.cli.common import EXIT_FAILURE, Subcommands, registry
from streamproc.config.settings import Settings
from streamproc.config.topics import load_topic_specs

_EXIT_CODES = (
    "exit codes: 0 compatible; 1 a version (or the candidate) cannot read an older one, or the "
    "registry refuses it; 2 a schema file that does not parse or is badly named; 3 the "
    "registry unreachable"
)


def register(commands: Subcommands) -> None:
    schemas = commands.add_parser("schemas", help="Avro schemas in schemas/")
    actions = schemas.add_subparsers(required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="parse every schema and check backward compatibility between versions",
        description="Each version of a schema must read records written with every earlier "
        "version (backward, transitively), since the worker reads every record as the newest "
        "version: a new field needs a default, a field keeps its type (or one Avro promotes it "
        "to), a renamed field lists its old name in aliases. --candidate checks a new version "
        "before it is added to the schemas folder. With STREAMPROC_SCHEMA_REGISTRY_URL set, the "
        "registry's compatibility check is asked too, for each subject (<topic>-value) of a "
        "declared topic that carries the schema: the candidate's, else each schema's newest.",
        epilog=_EXIT_CODES,
    )
    check.add_argument(
        "--candidate",
        metavar="PATH",
        type=Path,
        default=None,
        help="a new version's .avsc file, named <namespace>.<Name>.v<N>.avsc, checked against "
        "the versions in the schemas folder; nothing is added or registered",
    )
    check.set_defaults(command=_check)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    catalog = SchemaCatalog.load(settings.schemas_dir)
    for schema in catalog:
        print(f"ok   {schema.name} v{schema.version}  id {schema.fingerprint_id}  ({schema.path})")
    problems = catalog.check_compatibility()
    candidate = None
    if args.candidate is not None:
        candidate = load_schema_file(args.candidate)
        found = catalog.check_candidate(candidate)
        verdict = "FAIL" if found else "ok  "
        print(f"{verdict} candidate {candidate.name} v{candidate.version}  ({candidate.path})")
        problems += found
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    refused = _ask_registry(settings, catalog, candidate)
    return EXIT_FAILURE if problems or refused else 0


def _ask_registry(
    settings: Settings, catalog: SchemaCatalog, candidate: SchemaVersion | None
) -> bool:
    """Whether the configured registry refuses the candidate (or a newest version) for a
    subject of its topics; False when no registry is configured."""
    client = registry(settings, catalog)
    if not isinstance(client, ConfluentRegistry):
        print("registry: none configured (STREAMPROC_SCHEMA_REGISTRY_URL); checked here only")
        return False
    asked = [candidate] if candidate else [catalog.latest(name) for name in catalog.names()]
    topics = load_topic_specs(settings.topics_dir)
    refused = False
    for schema in asked:
        subjects = [f"{t.name}-value" for t in topics if t.value_schema == schema.name]
        if candidate is not None and not subjects:
            print(f"registry: no declared topic carries {schema.name}: no subject to ask about")
        for subject in subjects:
            verdict = client.compatibility(subject, schema.definition)
            refused |= verdict.compatible is False
            _report(schema, verdict)
    return refused


def _report(schema: SchemaVersion, verdict: RegistryVerdict) -> None:
    what = f"{schema.name} v{schema.version}"
    why = "; ".join(verdict.messages)
    if verdict.compatible:
        print(f"ok   registry: {what} is compatible with subject {verdict.subject}")
    elif verdict.compatible is None:
        print(f"note registry: subject {verdict.subject} holds no version yet ({why})")
    else:
        print(
            f"FAIL registry refuses {what} for subject {verdict.subject}: "
            f"{why or 'no reason given'}. Fix the schema as the registry says (its "
            "compatibility level for the subject decides), or publish the change under a new "
            "subject (a new topic version)",
            file=sys.stderr,
        )
