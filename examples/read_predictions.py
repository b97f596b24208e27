"""Print the service's fraud predictions as they arrive, with the producer SDK's reader; Ctrl-C
stops.

Against the local stack (`make up`) with a worker running (`streamproc worker`, in another
terminal), from the repository's root:

    .venv/bin/python examples/read_predictions.py --group fraud-desk

Then send orders (examples/send_orders.py) and watch their scores come. It reads in the
consumer group `--group`, committing each batch once it is printed: stopped and started again,
it goes on where it was, and a batch interrupted while printing comes again (at least once).
A new group starts at the end of the topic, or at its beginning with --from-beginning. The
STREAMPROC_* environment is the service's, as for examples/send_orders.py.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from streamproc.avro_records import OrderPrediction
from streamproc.producer import PredictionReader, Start


def line(prediction: OrderPrediction) -> str:
    return (
        f"{prediction['event_id']}  fraud {prediction['fraud_probability']:.3f}  "
        f"{prediction['model_name']} v{prediction['model_version']}  "
        f"{prediction['latency_ms']} ms after the order"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print fraud predictions as they arrive.")
    parser.add_argument("--group", default="example-predictions", help="the consumer group")
    parser.add_argument("--from-beginning", action="store_true", help="a new group's start")
    parser.add_argument("--limit", type=int, help="stop after this many predictions")
    parser.add_argument("--idle-timeout", type=float, help="stop after this many s without one")
    args = parser.parse_args(argv)

    start: Start = "earliest" if args.from_beginning else "latest"
    printed = 0
    with PredictionReader.from_settings(args.group, start=start) as reader:
        try:
            for batch in reader.batches(idle_timeout_s=args.idle_timeout):
                for prediction in batch:
                    print(line(prediction), flush=True)
                printed += len(batch)
                if args.limit is not None and printed >= args.limit:
                    reader.commit()  # leaving the loop: this batch is handled, commit it here
                    break
        except KeyboardInterrupt:
            pass  # the batch being printed is not committed: the group reads it again
    return 0


if __name__ == "__main__":
    sys.exit(main())
