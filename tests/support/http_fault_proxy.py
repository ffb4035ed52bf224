"""A loopback HTTP proxy in front of a DynamoDB endpoint that forwards requests, or denies them as IAM would.

- `pass`: each request goes to the target as it came (method, path and query, headers with
  Authorization and X-Amz-*, body), and the target's answer comes back as it was given (status,
  headers, body; not decompressed, so botocore's CRC32 check sees the endpoint's bytes).
- `deny`: each request is answered as DynamoDB answers a principal whose IAM policy lost the action:
  HTTP 400, `AccessDeniedException`; nothing reaches the target.

It runs on the event loop of whoever opens it (`async with running_http_fault_proxy(...)`), so a
worker process can be pointed at `proxy.url`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

Mode = Literal["pass", "deny"]
PRINCIPAL = "arn:aws:sts::123456789012:assumed-role/x"
# Headers about one hop, not the message: each side of the proxy sets its own.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
# aiohttp's client adds these unless told not to; the request must leave as the worker sent it.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


@dataclass
class HttpProxyCounts:
    forwarded: int = 0
    denied: int = 0


@dataclass
class HttpFaultProxy:
    target_url: str
    host: str = "127.0.0.1"
    port: int = 0
    mode: Mode = "pass"
    counts: HttpProxyCounts = field(default_factory=HttpProxyCounts)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=_NO_AUTO_HEADERS)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.mode == "deny":
            self.counts.denied += 1
            return access_denied(request.headers.get("X-Amz-Target", ""))
        assert self._session is not None
        self.counts.forwarded += 1
        async with self._session.request(
            request.method,
            self.target_url.rstrip("/") + request.path_qs,
            headers=_end_to_end(request.headers),
            data=body,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            return web.Response(
                status=upstream.status,
                reason=upstream.reason,
                body=payload,
                headers=_end_to_end(upstream.headers),
            )


def access_denied(target: str) -> web.Response:
    """DynamoDB's answer to an action the caller's IAM policy does not allow."""
    action = target.rpartition(".")[2] or "*"
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException",
        "message": f"User: {PRINCIPAL} is not authorized to perform: dynamodb:{action}",
    }
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "x-amzn-ErrorType": "AccessDeniedException",
        "x-amzn-RequestId": uuid.uuid4().hex,
    }
    return web.Response(status=400, body=json.dumps(body).encode(), headers=headers)


def _end_to_end(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in _HOP_BY_HOP)


@asynccontextmanager
async def running_http_fault_proxy(target_url: str) -> AsyncIterator[HttpFaultProxy]:
    """A proxy to `target_url` on a free loopback port until the block ends."""
    proxy = HttpFaultProxy(target_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
