"""`streamproc top`: running workers' /metrics as a live view (rates, latency, lag, models,
health), or once as plain text when stdout is not a terminal."""

from __future__ import annotations

import argparse
import math
import sys

from streamproc.cli.common import Subcommands
from streamproc.config.settings import Settings
from streamproc.tools.top.live import summary, watch
from streamproc.tools.top.render import plain_text

# A worker bound to every address answers on this machine's loopback.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - matched, not bound


def register(commands: Subcommands) -> None:
    top = commands.add_parser("top", help="a live view of running workers' metrics")
    top.add_argument(
        "--url",
        action="append",
        type=_http_url,
        help="a worker's /metrics; repeat it for each process of a deployment, their counts "
        "are summed (default: the one at STREAMPROC_WEB_HOST:STREAMPROC_WEB_PORT)",
    )
    top.add_argument(
        "--interval", type=_seconds, default=2.0, help="seconds between scrapes (default 2)"
    )
    top.add_argument(
        "--once",
        action="store_true",
        help="print one view as plain text, the rates over --interval, and exit "
        "(the default when stdout is not a terminal)",
    )
    top.set_defaults(command=_top)


def _top(args: argparse.Namespace, settings: Settings) -> int:
    urls = args.url or [_default_url(settings)]
    try:
        if args.once or not sys.stdout.isatty():
            view = summary(urls, args.interval)
            print(plain_text(view))
            return 0 if view.up else 1
        watch(urls, args.interval)
    except KeyboardInterrupt:  # how one leaves the view
        pass
    return 0


def _default_url(settings: Settings) -> str:
    host = _ANY_ADDRESS.get(settings.web_host, settings.web_host)
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.web_port}/metrics"


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text}: expected an http:// or https:// URL")
    return text


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text}: expected seconds > 0")
    return value
