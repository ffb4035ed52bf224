"""Helpers shared by the API tests: settings, tokens, the API on a loopback port, the listing as
the API shows it. The in-memory store the unit tests serve is tests.support.fake_store.FakeStore.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from execution_stream.adapters.dynamodb_item_codec import execution_to_item
from execution_stream.adapters.dynamodb_repository import open_repository
from execution_stream.api.app import build_api
from execution_stream.api.ports import CommandPublisher, ExecutionReader
from execution_stream.api.server import serving
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.settings import Settings

SECRET = "unit-test-hs256-secret-of-at-least-32-bytes"
CURSOR_SECRET = "unit-test-cursor-secret-of-32-bytes-or-more"


def hs256_settings(**overrides: Any) -> Settings:
    fields: dict[str, Any] = {"jwt_secret": SecretStr(SECRET), "cursor_secret": None}
    return Settings(**(fields | overrides))


@cache
def rsa_pem_pair() -> tuple[str, str]:
    """(private key PEM, public key PEM), generated once per session."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def token(
    tenant_id: Any = "tenant-a",
    *,
    key: str | bytes = SECRET,
    algorithm: str = "HS256",
    expires_in: float | None = 300,
    claim: str = "tenant_id",
    **claims: Any,
) -> str:
    payload: dict[str, Any] = dict(claims)
    if tenant_id is not None:
        payload[claim] = tenant_id
    if expires_in is not None:
        payload["exp"] = int(time.time() + expires_in)
    return jwt.encode(payload, key, algorithm=algorithm)


def bearer(tenant_id: str | None = "tenant-a", **options: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(tenant_id, **options)}"}


@asynccontextmanager
async def running_api(
    reader: ExecutionReader, settings: Settings | None = None, commands: CommandPublisher | None = None
) -> AsyncIterator[aiohttp.ClientSession]:
    """The API served as in production (access log included) on a free loopback port."""
    app = build_api(settings or hs256_settings(), reader, commands)
    async with (
        serving(app, "127.0.0.1", 0) as url,
        aiohttp.ClientSession(base_url=url) as session,
    ):
        yield session


def listed(execution: Execution, **waiting: Any) -> dict[str, Any]:
    """The item the API shows for `execution`: the stored item without the worker's queue
    bookkeeping, and on a pending one the waiting fields (null unless given)."""
    item = execution_to_item(execution)
    item.pop("waiting_for_asset", None)
    item.pop("queue_index", None)
    item.pop("queue_priority", None)
    if execution.status is ExecutionStatus.PENDING:
        item |= {"waiting_reason": None, "queue_position": None} | waiting
    return item


async def get_json(
    client: aiohttp.ClientSession, path: str, headers: dict[str, str] | None
) -> tuple[int, Any]:
    async with client.get(path, headers=headers) as response:
        return response.status, await response.json()


async def read_all(
    client: aiohttp.ClientSession, tenant_id: str, query: str, limit: int
) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following metadata.after until it is null."""
    pages: list[list[dict[str, Any]]] = []
    path = f"/executions?limit={limit}{query}"
    while True:
        status, body = await get_json(client, path, bearer(tenant_id))
        assert status == 200, body
        assert body["metadata"]["count"] == len(body["data"]) <= limit
        pages.append(body["data"])
        after = body["metadata"]["after"]
        if after is None:
            return pages
        assert len(body["data"]) == limit, "a page before the last one is full"
        assert len(pages) <= 1000
        path = f"/executions?limit={limit}{query}&after={after}"


@dataclass
class ApiThread:
    """The API served on its own loop in a thread: hypothesis tests are synchronous."""

    settings: Settings
    url: str = ""
    error: BaseException | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        assert self.ready.wait(30), "the API did not start"
        assert self.error is None, self.error

    async def _serve(self) -> None:
        try:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with open_repository(self.settings) as repository:
                app = build_api(self.settings, repository)
                async with serving(app, "127.0.0.1", 0) as self.url:
                    self.ready.set()
                    await self._stop.wait()
        except BaseException as error:
            self.error = error
            raise
        finally:
            self.ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)

    def get(self, target: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        parsed = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=30)
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()
