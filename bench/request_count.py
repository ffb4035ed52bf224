"""DynamoDB requests per execution, counted by a loopback proxy in a short phase of its own.

A fresh worker is pointed at `CountingProxy`, which forwards every HTTP request to the endpoint
unchanged and counts it by its `X-Amz-Target` operation. After the warm-up, `count` triggers are
produced at once (as in P) and the requests between the first produce and the last `dispatched`
event are what they cost. The proxy costs CPU and a hop of latency, so no timed phase goes
through it: P and the latency phase talk to the endpoint directly.

The same count works for every endpoint: moto's server logs one line per request, dynoxide logs
nothing per request unless RUST_LOG=debug, which would cost it CPU during the timed phases too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.pipeline_run import PHASE_SECONDS, dispatched_of, worker_running
from execution_stream.settings import Settings

TARGET = b"x-amz-target:"
OPERATION_PREFIX = "DynamoDB_20120810."
HEADERS_END = b"\r\n\r\n"
CHUNK = 65536


UPDATE_ALL_OLD = "UpdateItem ReturnValues=ALL_OLD"
BATCH_GET_KEYS = "BatchGetItem keys"
COSTED = frozenset({"PutItem", "GetItem", "UpdateItem", "BatchGetItem"})


@dataclass(frozen=True)
class RequestCount:
    executions: int
    by_operation: dict[str, int]
    # What a request's cost also depends on (`detail_of`): UpdateItems by ReturnValues, the keys
    # the BatchGetItems asked for.
    details: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.by_operation.values())

    @property
    def per_execution(self) -> float:
        return self.requests / self.executions

    def per_execution_by_operation(self) -> dict[str, float]:
        return {name: count / self.executions for name, count in sorted(self.by_operation.items())}


def operation_of(head: bytes) -> str:
    """The DynamoDB operation an HTTP request's header block names (`?` when none)."""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(TARGET):
            target = line[len(TARGET) :].strip().decode("ascii", "replace")
            return target.removeprefix(OPERATION_PREFIX)
    return "?"


def detail_of(operation: str, body: bytes) -> dict[str, int]:
    """What a request's cost depends on beyond its operation: an UpdateItem's ReturnValues (the
    item returned or not), a BatchGetItem's keys."""
    if operation == "UpdateItem":
        return {f"UpdateItem ReturnValues={json.loads(body).get('ReturnValues', 'NONE')}": 1}
    if operation == "BatchGetItem":
        tables = json.loads(body).get("RequestItems", {}).values()
        return {BATCH_GET_KEYS: sum(len(table.get("Keys", [])) for table in tables)}
    return {}


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("the counting proxy reads Content-Length bodies only, not chunked ones")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


@dataclass
class CountingProxy:
    """Forwards loopback HTTP/1.1 connections to `upstream` (an http:// URL), one upstream
    connection per client connection, and counts the requests by operation."""

    upstream: str
    operations: Counter[str] = field(default_factory=Counter)
    details: Counter[str] = field(default_factory=Counter)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _connections: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        """Closes every connection (each side then reads its end) and waits for them to finish."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5)
        await self._server.wait_closed()

    async def _serve(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        parts = urlsplit(self.upstream)
        upstream, to_upstream = await asyncio.open_connection(parts.hostname, parts.port or 80)
        self._writers |= {to_client, to_upstream}
        try:
            await asyncio.gather(self._requests(client, to_upstream), _pump(upstream, to_client))
        except (OSError, asyncio.IncompleteReadError):
            pass  # one side went away: so does the connection
        finally:
            for writer in (to_upstream, to_client):
                writer.close()
                self._writers.discard(writer)
            self._connections.discard(task)

    async def _requests(self, client: asyncio.StreamReader, to_upstream: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await client.readuntil(HEADERS_END)
            except asyncio.IncompleteReadError:
                break
            body = await client.readexactly(content_length(head))
            operation = operation_of(head)
            self.operations[operation] += 1
            self.details.update(detail_of(operation, body))
            to_upstream.write(head + body)
            await to_upstream.drain()
        with contextlib.suppress(OSError):
            to_upstream.write_eof()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(CHUNK):
        sink.write(chunk)
        await sink.drain()
    with contextlib.suppress(OSError):
        sink.write_eof()


def countable(endpoint_url: str) -> bool:
    """Only a plain-HTTP endpoint: a TLS one would see the proxy's host in the signed headers."""
    return urlsplit(endpoint_url).scheme == "http"


async def count_requests(base: Settings, count: int, tenant_count: int, log_dir: Path) -> RequestCount:
    """A fresh worker whose DynamoDB endpoint is the counting proxy; `count` triggers at once."""
    assert base.dynamodb_endpoint_url is not None
    proxy = CountingProxy(base.dynamodb_endpoint_url)
    await proxy.start()
    try:
        settings = base.model_copy(update={"dynamodb_endpoint_url": proxy.url})
        async with worker_running(settings, tenant_count, log_dir / "worker-count.log", "count") as running:
            records = running.records(range(count))
            keys = [key for key, _ in records]
            before, details_before = Counter(proxy.operations), Counter(proxy.details)
            delivered = [await running.send(record) for _, record in records]
            await asyncio.gather(*delivered)
            label = "count: requests -> dispatched"
            await running.watch.wait_for(keys, dispatched_of, label, PHASE_SECONDS, running.alive)
            served, details = proxy.operations - before, proxy.details - details_before
    finally:
        await proxy.stop()
    return RequestCount(count, dict(served), dict(details))
