"""The loopback proxy the DynamoDB outage test relies on: it passes, refuses and black-holes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.support.tcp_proxy import TcpProxy, running_tcp_proxy

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def round_trip(proxy: TcpProxy, payload: bytes, seconds: float = 2.0) -> bytes:
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), seconds)
    finally:
        writer.close()


async def test_passes_bytes_both_ways() -> None:
    async with echo_server() as port, running_tcp_proxy("127.0.0.1", port) as proxy:
        assert await round_trip(proxy, b"hello") == b"hello"
        assert proxy.counts.forwarded == 1
        assert proxy.counts.bytes_up == proxy.counts.bytes_down == 5


async def test_refuses_new_connections_and_resets_live_ones() -> None:
    async with echo_server() as port, running_tcp_proxy("127.0.0.1", port) as proxy:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        proxy.set_mode("refuse")
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 2)  # reset: no answer will ever come
        writer.close()
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await round_trip(proxy, b"z")
        assert proxy.counts.refused == 1
        proxy.set_mode("pass")
        assert await round_trip(proxy, b"again") == b"again"


async def test_black_holes_connections_until_it_passes_again() -> None:
    async with echo_server() as port, running_tcp_proxy("127.0.0.1", port) as proxy:
        proxy.set_mode("blackhole")
        with pytest.raises(TimeoutError):
            await round_trip(proxy, b"lost", seconds=0.5)
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        writer.write(b"swallowed")
        await writer.drain()
        await asyncio.sleep(0.1)
        proxy.set_mode("pass")  # the black-holed connection is reset: its bytes are gone
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 2)
        writer.close()
        assert proxy.counts.blackholed == 2
        assert await round_trip(proxy, b"back") == b"back"
