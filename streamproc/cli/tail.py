"""`streamproc tail TOPIC`: a topic's records as JSON lines on stdout, values decoded by the
schema id in each record's frame."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.browse import EARLIEST, LATEST, StartAt, TopicReader
from streamproc.cli.common import EXIT_CODES, Subcommands, positive_int, registry
from streamproc.config.settings import Settings
from streamproc.errors import ConfigError
from streamproc.tools.filters import Filter, parse_filter
from streamproc.tools.record_view import json_line, record_view


def register(commands: Subcommands) -> None:
    tail = commands.add_parser(
        "tail",
        help="print a topic's records as JSON lines, values decoded (DLQs with their errors)",
        description="Each line: topic, partition, offset, timestamp (epoch ms) and time (UTC), "
        "key, headers (as text) and value (decoded by the schema id in its frame; one that "
        "does not decode has value null, its error and value_base64). Without --follow it "
        "stops at the end each partition had when it started.",
        epilog=EXIT_CODES,
    )
    tail.add_argument("topic", metavar="TOPIC")
    tail.add_argument(
        "--from",
        dest="start",
        type=start_at,
        default=None,
        metavar="WHERE",
        help="earliest, latest, an ISO time (2026-03-29T10:00:00Z; without a zone: UTC) or an "
        "offset in every partition (default: earliest; with --follow, latest)",
    )
    tail.add_argument("--follow", action="store_true", help="go on printing new records (Ctrl-C)")
    tail.add_argument(
        "--filter",
        dest="filters",
        action="append",
        type=_filter,
        default=[],
        metavar="EXPR",
        help="print only records where PATH=TEXT, PATH!=TEXT, PATH~REGEX or PATH!~REGEX holds, "
        "PATH dotted in the printed object (value.currency=CHF, "
        "headers.streamproc.errors.reason=unknown_currency); several: all must hold",
    )
    tail.add_argument(
        "--partition", type=int, action="append", metavar="P", help="only partition P (repeatable)"
    )
    tail.add_argument(
        "--max", type=positive_int, default=None, metavar="N", help="stop after N records printed"
    )
    tail.set_defaults(command=_tail)


def start_at(text: str) -> StartAt:
    """--from: earliest, latest, an offset, or an ISO time (UTC when it names no zone)."""
    if text in ("earliest", "latest"):
        return EARLIEST if text == "earliest" else LATEST
    if text.isdigit():
        return StartAt("offset", int(text))
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text}: expected earliest, latest, an offset or an ISO time"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return StartAt("time", int(when.timestamp() * 1000))


def _filter(text: str) -> Filter:
    try:
        return parse_filter(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    catalog = SchemaCatalog.load(settings.schemas_dir)
    serde = AvroSerde(catalog, registry(settings, catalog))
    reader = TopicReader(settings.kafka_connection(), args.topic, settings.kafka_timeout_s)
    try:
        starts = reader.offsets(args.start or (LATEST if args.follow else EARLIEST))
        unknown = sorted(set(args.partition or ()) - set(starts))
        if unknown:
            raise ConfigError(f"--partition: {args.topic} has no partition {unknown}")
        wanted = set(args.partition or starts)
        reader.open({p: offset for p, offset in starts.items() if p in wanted}, args.follow)
        _print(reader, serde, args.filters, args.max)
    except KeyboardInterrupt:  # how one stops --follow
        pass
    except BrokenPipeError:  # the reader of stdout (head, less) has had enough
        # what is still buffered goes nowhere, instead of failing again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        reader.close()
    return 0


def _print(reader: TopicReader, serde: AvroSerde, filters: list[Filter], most: int | None) -> None:
    """Each record that passes the filters, up to `most`; line by line while following."""
    printed = 0
    while not reader.finished:
        for record in reader.read():
            view = record_view(record, serde.decode)
            if all(selected.matches(view) for selected in filters):
                print(json_line(view), flush=reader.following)
                printed += 1
                if printed == most:
                    return
