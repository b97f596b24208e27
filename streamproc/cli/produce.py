"""`streamproc produce --topic T FILE`: a JSON-lines or CSV file checked against the topic's
value schema, every bad row reported, then sent (nothing is, while a row is bad, unless
--skip-invalid)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.cli.common import EXIT_FAILURE, Subcommands, registry, require_topics
from streamproc.config.settings import Settings
from streamproc.config.topics import load_topic_specs
from streamproc.errors import InfraError
from streamproc.tools.conform import RecordShape, RecordShapes
from streamproc.tools.produce_file import (
    FileToSend,
    check,
    file_format,
    record_key,
    send,
    value_schema,
)
from streamproc.tools.rows import BadFile

_EXIT_CODES = (
    "exit codes: 0 sent (with --skip-invalid, bad rows reported and left out); 1 bad rows "
    "without --skip-invalid (nothing sent), a CSV header that does not fit the schema, or "
    "records Kafka refused; 2 usage or configuration (a topic not declared or missing, a file "
    "that cannot be read, --key not a field); 3 Kafka unreachable, or records lost on the way"
)


def register(commands: Subcommands) -> None:
    produce = commands.add_parser(
        "produce",
        help="send a JSON-lines or CSV file to a topic, every row checked against its schema first",
        description="Checks every row of FILE against the topic's value schema (value_schema in "
        "its topics/*.yaml declaration) and reports each bad one with its line and why; then "
        "encodes the rows (Confluent wire format) and sends them with an idempotent producer, "
        "waiting for every ack. Each row is written as the schema version whose fields it has "
        "(a CSV file: its header's), so files of old and new producers both go out as written. "
        "CSV: a header row of field names; cells are converted to the "
        "fields' types (an empty cell is null where the field may be null); a record, array "
        "or map cell is JSON.",
        epilog=_EXIT_CODES,
    )
    produce.add_argument(
        "file", metavar="FILE", type=Path, help=".jsonl, .json (JSON lines) or .csv"
    )
    produce.add_argument("--topic", required=True, help="a topic declared with a value_schema")
    produce.add_argument(
        "--skip-invalid",
        action="store_true",
        help="send the valid rows even when some are bad (those are reported and left out)",
    )
    produce.add_argument(
        "--key",
        metavar="FIELD",
        default=None,
        help="key each record by this field's value (default: as the record type's producers "
        "do, e.g. shop.OrderSubmitted by customer; else no key)",
    )
    produce.add_argument(
        "--format", choices=("jsonl", "csv"), default=None, help="default: from FILE's suffix"
    )
    produce.set_defaults(command=_produce)


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    catalog = SchemaCatalog.load(settings.schemas_dir)
    schema = value_schema(args.topic, load_topic_specs(settings.topics_dir))
    shape = RecordShapes(
        {version.version: RecordShape(version.definition) for version in catalog.versions(schema)},
        lambda keys: catalog.writer_for(schema, keys).version,
    )
    source = FileToSend(
        args.file,
        file_format(args.file, args.format),
        shape,
        args.topic,
        record_key(shape, args.key),
    )
    try:
        checked = check(source, lambda row: _problem(args.file, row.line, row.problem))
    except BadFile as bad:
        _problem(args.file, bad.line, str(bad))
        return EXIT_FAILURE
    if checked.invalid and not args.skip_invalid:
        print(
            f"{checked.invalid} bad rows of {checked.valid + checked.invalid}: nothing sent "
            "(fix them, or --skip-invalid to send the others)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if checked.valid:
        require_topics(settings, {args.topic})
    serde = AvroSerde(catalog, registry(settings, catalog))
    encode = partial(serde.encode, args.topic, schema)
    with _progress(checked.valid) as advance:
        sent = send(settings.kafka_connection(), source, encode, advance)
    if sent.lost:
        raise InfraError(f"{sent.lost} records not acked by Kafka ({sent.acked} were)")
    for problem in sent.refused:
        print(f"refused by Kafka: {problem}", file=sys.stderr)
    print(
        f"sent {sent.acked} to {args.topic}; skipped {checked.invalid} bad rows"
        + (f"; {len(sent.refused)} refused by Kafka" if sent.refused else "")
    )
    return EXIT_FAILURE if sent.refused else 0


def _problem(path: Path, line: int, problem: str | None) -> None:
    print(f"{path}:{line}: {problem}", file=sys.stderr)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """A bar of the acks on stderr in a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("sending", total=total)
        yield lambda: bar.advance(task)
