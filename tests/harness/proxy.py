"""A TCP proxy in front of a server port, for fault tests: pass bytes through, late, not at all,
or cut the connections, on command from the test's thread.

It runs an asyncio loop in a thread of its own, so a test (synchronous, or on another loop)
changes its mode with plain calls. Modes apply to every connection at once, the open ones too:

- pass-through (`restore`): bytes flow both ways;
- `add_latency(s)`: each chunk is held `s` seconds before it is forwarded, in order;
- `blackhole`: connections are accepted and held, and nothing is forwarded either way;
- `refuse`: a new connection is closed at once (as a server that is down resets it);
- `swallow_replies(hold_s)`: requests reach the server, its replies are discarded and the
  client's connection is closed `hold_s` later (the server ran the command, the client never
  heard: a timeout after the fact);
- `drop_connections`: close every open connection now, the mode unchanged.

A connection that lost bytes (blackholed or swallowed) is closed when the mode is restored:
its stream is out of step with the protocol, as after a real network fault.

A Kafka broker tells its clients where to connect in its metadata, so a proxied broker must
advertise the proxy's port (tests/harness/cluster.py builds the two together).
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

_CHUNK = 65_536
_T = TypeVar("_T")


class Mode(enum.Enum):
    """What the proxy does with the bytes of every connection."""

    FORWARD = "forward"
    BLACKHOLE = "blackhole"
    REFUSE = "refuse"
    SWALLOW = "swallow"


@dataclass(eq=False)
class _Connection:
    """One client connection and its upstream twin; `tainted` once it lost bytes."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    tainted: bool = False

    def close(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class TcpProxy:
    """Listens on 127.0.0.1:`port` (a free one by default) and forwards to `upstream`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.latency_s = 0.0
        self.hold_s = 0.0
        self.accepted = 0  # connections accepted since start: tests see clients come back
        self._mode = Mode.FORWARD
        self._connections: set[_Connection] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> TcpProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", port))
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def close(self) -> None:
        if self._server is not None:
            self._call(self._shut(self._server))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    # --- faults, called from the test's thread ------------------------------------------

    def restore(self, drop_tainted: bool = True) -> None:
        """Pass-through, no latency. Connections that lost bytes never forward again: they
        are closed now, or (`drop_tainted` False) when their own close comes."""
        self._mode, self.latency_s = Mode.FORWARD, 0.0
        if drop_tainted:
            self._call(self._drop(lambda connection: connection.tainted))

    def add_latency(self, seconds: float) -> None:
        self.latency_s = seconds

    def blackhole(self) -> None:
        self._mode = Mode.BLACKHOLE

    def refuse(self) -> None:
        """New connections are closed at once; open ones stay until `drop_connections`."""
        self._mode = Mode.REFUSE

    def swallow_replies(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._mode = Mode.SWALLOW

    def drop_connections(self) -> None:
        self._call(self._drop(lambda _: True))

    def down(self) -> None:
        """As a server that went away: open connections cut, new ones refused."""
        self.refuse()
        self.drop_connections()

    # --- the proxy's loop ---------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _shut(self, server: asyncio.Server) -> None:
        # On the loop's thread: Server.close is not thread-safe (called from another thread
        # while a connection detaches, it fails in Server._wakeup).
        server.close()
        await self._drop(lambda _: True)

    async def _drop(self, which: Callable[[_Connection], bool]) -> None:
        for connection in [c for c in self._connections if which(c)]:
            self._connections.discard(connection)
            connection.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._mode is Mode.REFUSE:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()  # the server is down: so is the proxy, to its clients
            return
        connection = _Connection(writer, up_writer)
        self._connections.add(connection)
        for source, sink, upstream in ((reader, up_writer, True), (up_reader, writer, False)):
            chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
            connection.tasks += [
                asyncio.ensure_future(self._read(connection, source, chunks, upstream)),
                asyncio.ensure_future(self._write(connection, chunks, sink)),
            ]

    async def _read(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        chunks: asyncio.Queue[tuple[float, bytes]],
        upstream: bool,
    ) -> None:
        """One direction's reads, each chunk queued with the time it may be forwarded (a
        reader apart from the writer: every chunk is late by the latency, not by the sum)."""
        try:
            while data := await reader.read(_CHUNK):
                if self._forward(connection, upstream):
                    chunks.put_nowait((time.monotonic() + self.latency_s, data))
        except (ConnectionError, OSError):
            pass
        chunks.put_nowait((0.0, b""))  # end of stream

    async def _write(
        self,
        connection: _Connection,
        chunks: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            while True:
                due, data = await chunks.get()
                if not data:
                    break
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(connection)
            connection.close()

    def _forward(self, connection: _Connection, upstream: bool) -> bool:
        """Whether a chunk read now goes on; marks the connection when it does not."""
        mode = self._mode
        if connection.tainted:
            return False  # a stream that lost bytes never forwards again
        if mode is Mode.FORWARD or mode is Mode.REFUSE or (mode is Mode.SWALLOW and upstream):
            return True
        if mode is Mode.SWALLOW:
            self._loop.call_later(self.hold_s, self._close_later, connection)
        connection.tainted = True
        return False

    def _close_later(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        connection.close()
