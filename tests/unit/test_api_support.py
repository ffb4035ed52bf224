"""Helpers shared by the API tests: settings, tokens, an in-memory ExecutionRepository and reader.

No tests live here. The fakes implement our own ports (not an outside system): the repository with
the paging contract of the DynamoDB repository (newest first, `next_key` None exactly on the last
page), the reader with that of the DynamoDB reader (one tenant's execution by id, its snapshots).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from execution_stream.api.app import build_app
from execution_stream.api.server import serving
from execution_stream.domain import keys
from execution_stream.domain.item_codec import execution_to_item
from execution_stream.domain.models import Asset, Execution, ExecutionStatus
from execution_stream.domain.ports import (
    CreateResult,
    ExecutionKey,
    ExecutionPage,
    ExecutionQuery,
    ExecutionReader,
    ExecutionRepository,
    QueueSnapshot,
    RepositoryUnavailableError,
    StatusChange,
    StatusUpdateResult,
)
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
    repository: ExecutionRepository,
    settings: Settings | None = None,
    reader: ExecutionReader | None = None,
) -> AsyncIterator[aiohttp.ClientSession]:
    """The API served as in production (access log included) on a free loopback port; without a
    reader, one that knows no execution and no queue."""
    app = build_app(settings or hs256_settings(), repository, reader or FakeReader())
    async with (
        serving(app, "127.0.0.1", 0) as url,
        aiohttp.ClientSession(base_url=url) as session,
    ):
        yield session


class FakeRepository:
    """An in-memory ExecutionRepository; `available=False` makes every call unavailable."""

    def __init__(self, executions: Iterable[Execution] = ()) -> None:
        self.executions = list(executions)
        self.available = True
        self.queries: list[ExecutionQuery] = []

    async def create(self, execution: Execution) -> CreateResult:
        self.executions.append(execution)
        return CreateResult(execution, created=True)

    async def create_many(self, executions: Sequence[Execution]) -> list[CreateResult]:
        return [await self.create(execution) for execution in executions]

    async def get(self, key: ExecutionKey) -> Execution | None:
        return next((e for e in self.executions if ExecutionKey.of(e) == key), None)

    async def update_status(
        self, key: ExecutionKey, change: StatusChange, plan_item_slug: str | None = None
    ) -> StatusUpdateResult:
        raise NotImplementedError

    async def hold_report(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        raise NotImplementedError

    async def held_reports(self, key: ExecutionKey) -> tuple[StatusChange, ...]:
        raise NotImplementedError

    async def complete_waiting(self, key: ExecutionKey, asset: Asset) -> Execution | None:
        raise NotImplementedError

    async def list(self, query: ExecutionQuery) -> ExecutionPage:
        self._check_available()
        self.queries.append(query)
        matching = sorted(
            (e for e in self.executions if _matches(e, query)),
            key=lambda e: (e.created_at, keys.sort_key(e.jit_event_id, e.execution_id)),
            reverse=True,
        )
        start = 0
        if query.start_after is not None:
            sort_keys = [keys.sort_key(e.jit_event_id, e.execution_id) for e in matching]
            start = sort_keys.index(query.start_after[keys.SK]) + 1
        page = matching[start : start + query.limit]
        if start + query.limit >= len(matching):
            return ExecutionPage(page, None)
        return ExecutionPage(page, _page_key(page[-1], query))

    async def ping(self) -> None:
        self._check_available()

    def _check_available(self) -> None:
        if not self.available:
            raise RepositoryUnavailableError("fake DynamoDB is down")


def _matches(execution: Execution, query: ExecutionQuery) -> bool:
    return (
        execution.tenant_id == query.tenant_id
        and query.status in {None, execution.status}
        and query.plan_item_slug in {None, execution.plan_item_slug}
    )


def _page_key(last: Execution, query: ExecutionQuery) -> dict[str, str]:
    index = keys.index_for_filter(query.tenant_id, query.status, query.plan_item_slug)
    item_keys = keys.execution_keys(last)
    names = (keys.PK, keys.SK, index.partition_key_name, index.sort_key_name)
    return {name: item_keys[name] for name in names}


class FakeReader:
    """An in-memory ExecutionReader that records what it is asked; `available=False` makes every
    call unavailable."""

    def __init__(self, executions: Iterable[Execution] = (), snapshots: Iterable[QueueSnapshot] = ()) -> None:
        self.executions = list(executions)
        self.snapshots = {(s.tenant_id, s.job_runner): s for s in snapshots}
        self.available = True
        self.finds: list[tuple[str, str]] = []
        self.snapshot_requests: list[tuple[str, frozenset[str]]] = []

    async def find(self, tenant_id: str, execution_id: str) -> Execution | None:
        self._check_available()
        self.finds.append((tenant_id, execution_id))
        matching = (e for e in self.executions if (e.tenant_id, e.execution_id) == (tenant_id, execution_id))
        return next(matching, None)

    async def queue_snapshots(self, tenant_id: str, runners: frozenset[str]) -> dict[str, QueueSnapshot]:
        self._check_available()
        self.snapshot_requests.append((tenant_id, runners))
        found = (self.snapshots.get((tenant_id, runner)) for runner in runners)
        return {snapshot.job_runner: snapshot for snapshot in found if snapshot is not None}

    def _check_available(self) -> None:
        if not self.available:
            raise RepositoryUnavailableError("fake DynamoDB is down")


def listed(execution: Execution, **waiting: Any) -> dict[str, Any]:
    """The item the API shows for `execution`: the stored item without the worker's queue
    bookkeeping, and on a pending one the waiting fields (null unless given)."""
    item = execution_to_item(execution)
    item.pop("waiting_for_asset", None)
    item.pop("queue_index", None)
    if execution.status is ExecutionStatus.PENDING:
        item |= {"waiting_reason": None, "queue_position": None} | waiting
    return item
