"""`streamproc dlq inspect|redrive TOPIC`: what a DLQ holds, and its dead letters re-sent to the
topics they were read from once the cause is fixed, each once."""

from __future__ import annotations

import argparse
import json

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.browse import EARLIEST, TopicReader
from streamproc.adapters.kafka.dlq import dlq_of, reason_of
from streamproc.adapters.kafka.redrive import REDRIVE_GROUP, RedriveOrder, redrive
from streamproc.cli.common import EXIT_CODES, Subcommands, positive_int, registry
from streamproc.config.settings import Settings
from streamproc.records import Envelope, OutRecord
from streamproc.tools.dlq_summary import DlqSummary
from streamproc.tools.record_view import json_line, record_view
from streamproc.tools.top.render import plain_section

_TOPIC_HELP = "a DLQ (shop.order.v1.dlq) or the topic it is beside (shop.order.v1)"


def register(commands: Subcommands) -> None:
    dlq = commands.add_parser("dlq", help="dead letters: inspect a DLQ, re-drive it")
    actions = dlq.add_subparsers(required=True, metavar="ACTION")

    inspect = actions.add_parser(
        "inspect",
        help="dead letters by reason, source topic and exception, with samples",
        description="Reads the whole DLQ (read_committed) and counts its dead letters by reason "
        "(with the first and last record time) and by source topic and exception class, with "
        "the first few of each reason as samples.",
        epilog=EXIT_CODES,
    )
    inspect.add_argument("topic", metavar="TOPIC", help=_TOPIC_HELP)
    inspect.add_argument(
        "--samples", type=int, default=3, metavar="N", help="samples per reason (default 3)"
    )
    inspect.add_argument(
        "--json", action="store_true", help="one JSON object, samples as `tail` prints records"
    )
    inspect.set_defaults(command=_inspect)

    again = actions.add_parser(
        "redrive",
        help="re-send dead letters to their source topic after a fix, each once",
        description="Re-sends each dead letter to the topic named by its __streams.errors.topic "
        "header, with its original key, value and headers and a streamproc.redrive header "
        "(<dlq>/<partition>/<offset>), in Kafka transactions that also commit the consumer "
        f"group's offsets on the DLQ ({REDRIVE_GROUP}; with --reason R, {REDRIVE_GROUP}.R): "
        "a second run re-sends nothing, and one that fails re-sends nothing twice. A run for "
        "every reason passes over what a run for one reason re-sent. Dead letters whose value "
        "was left out for size cannot be re-sent: they are counted.",
        epilog=EXIT_CODES,
    )
    again.add_argument("topic", metavar="TOPIC", help=_TOPIC_HELP)
    again.add_argument("--reason", default=None, help="only dead letters of this reason code")
    again.add_argument(
        "--dry-run",
        action="store_true",
        help="send and commit nothing; print each record that would be sent",
    )
    again.add_argument(
        "--limit", type=positive_int, default=None, metavar="N", help="re-send at most N"
    )
    again.add_argument(
        "--group",
        default=REDRIVE_GROUP,
        help=f"the consumer group that remembers the progress (default {REDRIVE_GROUP})",
    )
    again.set_defaults(command=_redrive)


def _inspect(args: argparse.Namespace, settings: Settings) -> int:
    topic = dlq_of(args.topic)
    catalog = SchemaCatalog.load(settings.schemas_dir)
    serde = AvroSerde(catalog, registry(settings, catalog))
    summary = DlqSummary(topic, max(args.samples, 0))
    reader = TopicReader(settings.kafka_connection(), topic, settings.kafka_timeout_s)
    try:
        reader.open(reader.offsets(EARLIEST))
        while not reader.finished:
            for record in reader.read():
                summary.add(record_view(record, serde.decode))
    finally:
        reader.close()
    if args.json:
        print(json_line(summary.as_json()))
    else:
        print("\n\n".join(plain_section(section) for section in summary.sections()))
    return 0


def _redrive(args: argparse.Namespace, settings: Settings) -> int:
    topic = dlq_of(args.topic)
    order = RedriveOrder(topic, args.reason, args.limit, args.dry_run, args.group)

    def show(dead: Envelope, record: OutRecord) -> None:
        print(
            json.dumps(
                {
                    "dlq": f"{dead.topic}/{dead.partition}/{dead.offset}",
                    "reason": reason_of(dead),
                    "to": record.topic,
                    "key": None if record.key is None else record.key.decode(errors="replace"),
                }
            )
        )

    report = redrive(
        settings.kafka_connection(),
        order,
        settings.kafka_timeout_s,
        show if args.dry_run else None,
    )
    done = "would re-send" if args.dry_run else "re-drove"
    sent = ", ".join(f"{count} to {to}" for to, count in sorted(report.redriven.items()))
    print(f"{done} {report.redriven.total()} dead letters of {topic}{': ' + sent if sent else ''}")
    if report.skipped:
        why = ", ".join(f"{count} {reason}" for reason, count in sorted(report.skipped.items()))
        print(f"passed over {report.skipped.total()}: {why}")
    return 0
