"""How the API and the bare Query are loaded, and the tenant they read stored.

The API is loaded with wrk where it is installed, otherwise by a bounded aiohttp client loop in
this process; the Query by one aiobotocore client with as many requests in flight.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import jwt

from bench.dynamodb_ceiling import BATCH_WRITE_CONCURRENCY, Runner, batch_writes
from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_client import open_client
from execution_stream.adapters.dynamodb_listing import list_request
from execution_stream.settings import Settings
from tests.support.factories import BASE_TIME, execution

PAGE = 20
FALLBACK_MAX_REQUESTS = 20_000
TOKEN_SECONDS = 7200


@dataclass(frozen=True)
class Load:
    label: str
    requests: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _load(label: str, latencies: list[float], seconds: float, errors: int) -> Load:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else []
    p50, p99 = (cuts[49] * 1000, cuts[98] * 1000) if cuts else (0.0, 0.0)
    return Load(label, len(latencies), seconds, len(latencies) / seconds, p50, p99, errors)


async def store(settings: Settings, tenant: str, count: int) -> float:
    """`count` executions of `tenant`, the items the repository's create writes, by BatchWriteItem
    (no condition: the table is fresh); items/s."""
    executions = [execution(tenant, n, created_at=BASE_TIME + timedelta(seconds=n)) for n in range(count)]
    async with open_client(settings) as client:
        requests = batch_writes(client, settings.dynamodb_table, executions)
        label = f"API: store {count} items"
        rate = await Runner(None).run(requests, BATCH_WRITE_CONCURRENCY, label, per=count / len(requests))
    return rate.per_second


async def closed_loop(
    label: str, connections: int, seconds: float, call: Callable[[], Awaitable[bool]]
) -> Load:
    """`connections` workers, each calling back to back, until `seconds` or the request cap."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline and len(latencies) < FALLBACK_MAX_REQUESTS:
            started = time.perf_counter()
            ok = await call()
            latencies.append(time.perf_counter() - started)
            errors += not ok

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return _load(label, latencies, time.perf_counter() - began, errors)


async def wrk(url: str, token: str, connections: int, seconds: float) -> Load:
    wrk_path = shutil.which("wrk")
    assert wrk_path is not None
    process = await asyncio.create_subprocess_exec(
        *(wrk_path, f"-t{min(2, connections)}", f"-c{connections}", f"-d{int(seconds)}s"),
        *("--timeout", "60s", "--latency", "-H", f"Authorization: Bearer {token}", url),
        stdout=asyncio.subprocess.PIPE,
    )
    output = (await process.communicate())[0].decode()
    print(output.replace(token, "<token>"), file=sys.stderr)
    return _parse_wrk(output, seconds)


def _parse_wrk(output: str, seconds: float) -> Load:
    def number(pattern: str) -> float:
        match = re.search(pattern, output)
        if match is None:
            raise RuntimeError(f"unexpected wrk output:\n{output}")
        value, unit = float(match.group(1)), match.group(2) if match.lastindex == 2 else ""
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "": 1.0}[unit]

    requests = int(number(r"(\d+) requests in"))
    errors = sum(
        int(count)
        for count in re.findall(r"(?:Non-2xx or 3xx responses:|connect|read|write|timeout) (\d+)", output)
    )
    return Load(
        label="API GET /executions?limit=20 (wrk)",
        requests=requests,
        seconds=seconds,
        requests_per_second=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=number(r"50%\s+([\d.]+)(us|ms|s)\b"),
        p99_ms=number(r"99%\s+([\d.]+)(us|ms|s)\b"),
        errors=errors,
    )


async def load_api(url: str, token: str, connections: int, seconds: float) -> Load:
    if shutil.which("wrk"):
        return await wrk(url, token, connections, seconds)
    print("wrk not found: an aiohttp client loop in this process loads the API", file=sys.stderr)
    headers = {"Authorization": f"Bearer {token}"}
    limit = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=limit, headers=headers) as session:

        async def get() -> bool:
            async with session.get(url) as response:
                await response.read()
                return response.status == 200

        return await closed_loop("API GET /executions?limit=20 (aiohttp)", connections, seconds, get)


async def load_query(settings: Settings, tenant: str, connections: int, seconds: float) -> Load:
    request = list_request(settings.dynamodb_table, keys.index_for_filter(tenant, None, None), PAGE)
    async with open_client(settings) as client:

        async def query() -> bool:
            response = await client.query(**request)
            return len(response["Items"]) == PAGE

        label = f"bare DynamoDB Query, {PAGE} items (aiobotocore)"
        return await closed_loop(label, connections, seconds, query)


async def check_page(url: str, token: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        body = await response.json()
    if response.status != 200 or body["metadata"]["count"] != PAGE:
        raise RuntimeError(f"the API did not answer a full page: {response.status} {body}")


def token_for(settings: Settings, tenant: str) -> str:
    """A bearer token for `tenant`, signed with the settings' JWT secret."""
    assert settings.jwt_secret is not None
    claims = {settings.jwt_tenant_claim: tenant, "exp": int(time.time()) + TOKEN_SECONDS}
    return jwt.encode(claims, settings.jwt_secret.get_secret_value())
