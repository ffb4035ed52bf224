"""A loopback TCP proxy that passes, refuses or black-holes connections, switchable at any time.

- `pass`: every connection is forwarded to the target, bytes both ways.
- `refuse`: new connections are reset at once (SO_LINGER 0), and so are the live ones.
- `blackhole`: new connections are accepted and never answered; live ones stop forwarding (their
  bytes are read and dropped, as on a partition). When the proxy passes again, the black-holed
  connections are reset: the bytes they swallowed are gone, so the stream behind them is broken.

`delay`, when set, gives the seconds to hold each chunk it forwards, given the chunk (their order is
kept): a slow network or a slow store, where a request and its answer each wait.

It runs on the event loop of whoever opens it (`async with running_tcp_proxy(...)`), so a process
of its own (a worker) can be pointed at `proxy.url` or `proxy.address`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["pass", "refuse", "blackhole"]
_CHUNK = 64 * 1024


@dataclass
class ProxyCounts:
    accepted: int = 0
    forwarded: int = 0
    refused: int = 0
    blackholed: int = 0
    bytes_up: int = 0
    bytes_down: int = 0


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    blackholed: bool = False


@dataclass
class TcpProxy:
    target_host: str
    target_port: int
    host: str = "127.0.0.1"
    port: int = 0
    counts: ProxyCounts = field(default_factory=ProxyCounts)
    delay: Callable[[bytes], float] | None = None
    _mode: Mode = "pass"
    _server: asyncio.Server | None = None
    _live: set[_Connection] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        previous, self._mode = self._mode, mode
        if mode == "refuse":
            for connection in list(self._live):
                self._reset(connection)
        elif mode == "blackhole":
            for connection in self._live:
                connection.blackholed = True
        elif previous == "blackhole":
            for connection in [c for c in self._live if c.blackholed]:
                self._reset(connection)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._live):
            self._reset(connection)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts.accepted += 1
        connection = _Connection(writer)
        if self._mode == "refuse":
            self.counts.refused += 1
            self._reset(connection)
            return
        self._live.add(connection)
        try:
            if self._mode == "blackhole":
                self.counts.blackholed += 1
                connection.blackholed = True
                await self._swallow(reader)
                return
            try:
                upstream_reader, upstream = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), 10
                )
            except (OSError, TimeoutError):
                self._reset(connection)
                return
            connection.upstream = upstream
            self.counts.forwarded += 1
            up = asyncio.ensure_future(self._pump(reader, upstream, connection, upward=True))
            down = asyncio.ensure_future(self._pump(upstream_reader, writer, connection, upward=False))
            pumps = {up, down}
            self._tasks.update(pumps)
            try:
                await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                self._tasks.difference_update(pumps)
        finally:
            self._live.discard(connection)
            _close(connection.client)
            if connection.upstream is not None:
                _close(connection.upstream)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: _Connection,
        upward: bool,
    ) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if connection.blackholed:
                    continue  # read and dropped: nothing reaches the other side
                if self.delay is not None:
                    await asyncio.sleep(self.delay(data))
                if upward:
                    self.counts.bytes_up += len(data)
                else:
                    self.counts.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not connection.blackholed:
                # One side finished: the other is told, as a plain TCP hop would.
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()
                    else:
                        writer.close()

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(_CHUNK):
                pass

    def _reset(self, connection: _Connection) -> None:
        for writer in (connection.client, connection.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self._live.discard(connection)


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()


@asynccontextmanager
async def running_tcp_proxy(target_host: str, target_port: int, port: int = 0) -> AsyncIterator[TcpProxy]:
    """A proxy to target_host:target_port on a free loopback port (or `port`) until the block ends."""
    proxy = TcpProxy(target_host, target_port, port=port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
