"""The comparison `python -m bench` runs on each endpoint: `GET /executions?limit=20` through
`execution-stream api` in a process of its own, against a bare DynamoDB Query of the same 20 items,
on one tenant's 10,000 executions. Each is loaded for the same time at the same concurrency;
the CPU each process used meanwhile is kept with the figures.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil
from pydantic import SecretStr

from bench.api_process import ApiProcess
from bench.api_requests import PAGE, Load, check_page, load_api, load_query, store, token_for
from bench.observe import CpuShare, cpu_seconds
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.settings import Settings

T = TypeVar("T")
Measured = tuple[Load, dict[str, float]]


@dataclass(frozen=True)
class ApiComparison:
    """The API process against a bare Query, at one concurrency, on one tenant's `items`."""

    items: int
    connections: int
    store_items_per_second: float
    api: Load
    query: Load
    # CPU cores during each load: the API process (`api`), this one (`bench`: the load's client) and
    # the endpoint's (`dynamodb`, where the bench started it).
    api_cpu_cores: dict[str, float]
    query_cpu_cores: dict[str, float]

    @property
    def rate_ratio(self) -> float:
        return self.api.requests_per_second / self.query.requests_per_second

    @property
    def p50_ratio(self) -> float:
        return self.api.p50_ms / self.query.p50_ms

    @property
    def p99_ratio(self) -> float:
        return self.api.p99_ms / self.query.p99_ms


async def with_cpu(processes: Mapping[str, psutil.Process], work: Awaitable[T]) -> tuple[T, dict[str, float]]:
    """`work`'s result, and the CPU cores each process used while it ran (`others`: the rest)."""
    before, began = cpu_seconds(processes), time.perf_counter()
    result = await work
    return result, CpuShare.between(before, cpu_seconds(processes), time.perf_counter() - began).cores


async def compare_at(
    settings: Settings,
    tenant: str,
    *,
    connections: int,
    seconds: float,
    log_path: Path,
    dynamodb: psutil.Process | None,
) -> tuple[Measured, Measured]:
    """`execution-stream api` loaded for `seconds`, then the bare Query for as long; CPU of each."""
    ours = {"bench": psutil.Process()} | ({"dynamodb": dynamodb} if dynamodb else {})
    token = token_for(settings, tenant)
    api_process = ApiProcess(settings, log_path)
    try:
        api_process.start()
        await api_process.ready()
        url = f"{api_process.url}/executions?limit={PAGE}"
        await check_page(url, token)
        watched = ours | {"api": api_process.psutil_process}
        api = await with_cpu(watched, load_api(url, token, connections, seconds))
    finally:
        await asyncio.to_thread(api_process.stop)
    query = await with_cpu(ours, load_query(settings, tenant, connections, seconds))
    return api, query


def api_settings(base: Settings, connections: int) -> Settings:
    """A fresh table, a JWT secret of the run, enough pooled connections for the load."""
    return base.model_copy(
        update={
            "dynamodb_table": f"bench-api-{uuid.uuid4().hex[:8]}",
            "jwt_secret": SecretStr(secrets.token_urlsafe(32)),
            "dynamodb_max_pool_connections": max(32, connections),
        }
    )


async def stored_tenant(settings: Settings, items: int) -> tuple[str, float]:
    """Creates the table and stores `items` executions of a new tenant: the tenant, items/s."""
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(create_table, settings)
    return tenant, await store(settings, tenant, items)


async def api_comparison(
    base: Settings,
    *,
    items: int,
    connections: int,
    seconds: float,
    log_dir: Path,
    dynamodb: psutil.Process | None,
) -> ApiComparison:
    """The comparison `python -m bench` runs on each endpoint."""
    settings = api_settings(base, connections)
    tenant, stored = await stored_tenant(settings, items)
    api, query = await compare_at(
        settings,
        tenant,
        connections=connections,
        seconds=seconds,
        log_path=log_dir / "api.log",
        dynamodb=dynamodb,
    )
    return ApiComparison(items, connections, stored, api[0], query[0], api[1], query[1])
