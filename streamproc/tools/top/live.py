"""Tool: `streamproc top`'s loop: scrapes the workers' /metrics every interval and shows the
view, live in a terminal, or once as plain text."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import RenderableType
from rich.live import Live

from streamproc.tools.top.exposition import Scrape, parse
from streamproc.tools.top.render import screen
from streamproc.tools.top.window import Round, Window, window

_TIMEOUT_S = 2.0  # a worker slower than this shows as down rather than stall the view


def scrape(url: str, timeout_s: float = _TIMEOUT_S) -> Scrape | str:
    """A worker's metrics, or why it did not answer."""
    try:
        # S310: the command line takes http(s) URLs only, the demo gives its worker's
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            text = response.read().decode()
        return parse(text, time.monotonic())
    # refused, timed out, an HTTP error status; cut off mid-answer; not Prometheus' format
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def scrape_all(urls: Sequence[str]) -> Round:
    """A URL given twice is one worker, scraped once."""
    return {url: scrape(url) for url in dict.fromkeys(urls)}


def summary(urls: Sequence[str], interval_s: float) -> Window:
    """Two rounds `interval_s` apart."""
    first = scrape_all(urls)
    time.sleep(interval_s)
    return window(first, scrape_all(urls))


def watch(urls: Sequence[str], interval_s: float) -> None:
    """The live view in this terminal, until Ctrl-C (KeyboardInterrupt)."""
    with Live(auto_refresh=False) as live:
        _follow(urls, interval_s, _shower(live), threading.Event())


@contextmanager
def watching(urls: Sequence[str], interval_s: float) -> Iterator[None]:
    """The live view while the body runs; the body keeps the main thread, and what it prints
    shows above the view."""
    stop = threading.Event()
    with Live(auto_refresh=False) as live:
        follower = threading.Thread(
            target=_follow, args=(urls, interval_s, _shower(live), stop), name="top", daemon=True
        )
        follower.start()
        try:
            yield
        finally:
            stop.set()
            follower.join()


def _follow(
    urls: Sequence[str],
    interval_s: float,
    show: Callable[[RenderableType], None],
    stop: threading.Event,
) -> None:
    """A view at once (totals, no rates yet), then one every `interval_s` until `stop`."""
    previous = scrape_all(urls)
    show(screen(window({}, previous)))
    while not stop.wait(interval_s):
        current = scrape_all(urls)
        show(screen(window(previous, current)))
        previous = current


def _shower(live: Live) -> Callable[[RenderableType], None]:
    return lambda view: live.update(view, refresh=True)
