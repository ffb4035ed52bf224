"""GET /executions?limit=20 under load, against a bare DynamoDB Query of 20 items, in one run.

    python -m bench.api_load [--executions 10000] [--connections 1,4] [--seconds 30]

Stores the executions of one tenant through the repository, serves the API on a loopback port and
loads it with wrk (or, without wrk, a bounded aiohttp client loop in this same process), then
runs the same Query from one aiobotocore client with as many concurrent requests. DynamoDB is the
endpoint EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL names, or moto's server started for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp
import jwt
from pydantic import SecretStr

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_client import open_client
from execution_stream.adapters.dynamodb_repository import open_repository
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.api.access_log import ACCESS_LOGGER
from execution_stream.api.app import build_api
from execution_stream.api.server import serving
from execution_stream.dev import LOCAL_AWS_DEFAULTS
from execution_stream.dev_stack.stack import dev_stack
from execution_stream.domain.models import Execution
from execution_stream.domain.store import ExecutionPage, ExecutionQuery, QueueSnapshot
from execution_stream.settings import Settings
from tests.support.factories import BASE_TIME, execution

PAGE = 20
RESULTS = Path(__file__).parent / "results" / "api_load.json"
FALLBACK_MAX_REQUESTS = 20_000


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


async def store(settings: Settings, tenant: str, count: int) -> None:
    started = time.perf_counter()
    async with open_repository(settings) as repository:
        for first in range(0, count, 1000):
            batch = [
                execution(tenant, n, created_at=BASE_TIME + timedelta(seconds=n))
                for n in range(first, min(first + 1000, count))
            ]
            await repository.create_many(batch)
            print(f"  {first + len(batch)} stored, {time.perf_counter() - started:.1f}s", flush=True)
    print(f"stored {count} executions in {time.perf_counter() - started:.1f}s")


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
    print(output.replace(token, "<token>"))
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
    print("wrk not found: falling back to an aiohttp client loop in this process")
    headers = {"Authorization": f"Bearer {token}"}
    limit = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=limit, headers=headers) as session:

        async def get() -> bool:
            async with session.get(url) as response:
                await response.read()
                return response.status == 200

        return await closed_loop("API GET /executions?limit=20 (aiohttp)", connections, seconds, get)


async def load_query(settings: Settings, tenant: str, connections: int, seconds: float) -> Load:
    index = keys.index_for_filter(tenant, None, None)
    request = {
        "TableName": settings.dynamodb_table,
        "IndexName": index.index.value,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": index.partition_key_name},
        "ExpressionAttributeValues": {":pk": {"S": index.partition_key_value}},
        "ScanIndexForward": False,
        "Limit": PAGE,
    }
    async with open_client(settings) as client:

        async def query() -> bool:
            response = await client.query(**request)  # type: ignore[arg-type]
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


class FixedPage:
    """A reader that answers every list with one page read before: the API's own cost. The bench's
    executions are never queued, so no snapshot is asked for."""

    def __init__(self, page: ExecutionPage) -> None:
        self._page = page

    async def list(self, query: ExecutionQuery) -> ExecutionPage:
        return self._page

    async def ping(self) -> None:
        return None

    async def find(self, tenant_id: str, execution_id: str) -> Execution | None:
        return None

    async def queue_snapshots(self, tenant_id: str, runners: frozenset[str]) -> dict[str, QueueSnapshot]:
        return {}


async def load_api_alone(settings: Settings, tenant: str, token: str, seconds: float) -> Load:
    async with open_repository(settings) as repository:
        page = await repository.list(ExecutionQuery(tenant, limit=PAGE))
    fixed = FixedPage(page)
    app = build_api(settings, fixed)
    async with serving(app, "127.0.0.1", 0) as base:
        load = await load_api(f"{base}/executions?limit={PAGE}", token, 4, seconds)
    return Load(**(asdict(load) | {"label": "API, in-memory page (no DynamoDB), 4 conns"}))


async def measure(settings: Settings, arguments: argparse.Namespace) -> tuple[list[tuple[Load, Load]], Load]:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(create_table, settings)
    await store(settings, tenant, arguments.executions)
    token = jwt.encode({"tenant_id": tenant, "exp": int(time.time()) + 7200}, _secret(settings))
    pairs = []
    for connections in arguments.connections:
        async with open_repository(settings) as repository:
            app = build_api(settings, repository)
            async with serving(app, "127.0.0.1", 0) as base:
                url = f"{base}/executions?limit={PAGE}"
                await check_page(url, token)
                api = await load_api(url, token, connections, arguments.seconds)
        query = await load_query(settings, tenant, connections, arguments.seconds)
        pairs.append((api, query))
    return pairs, await load_api_alone(settings, tenant, token, arguments.seconds)


def _secret(settings: Settings) -> str:
    assert settings.jwt_secret is not None
    return settings.jwt_secret.get_secret_value()


def report(results: tuple[list[tuple[Load, Load]], Load], arguments: argparse.Namespace) -> None:
    pairs, alone = results
    print(f"\n{arguments.executions} executions of one tenant stored; {arguments.seconds:g}s per run")
    print(f"{'':<48} {'conns':>5} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for (api, query), connections in zip(pairs, arguments.connections, strict=True):
        for load in (api, query):
            print(
                f"{load.label:<48} {connections:5d} {load.requests:8d} "
                f"{load.requests_per_second:8.1f} {load.p50_ms:8.1f} {load.p99_ms:8.1f} "
                f"{load.errors:6d}"
            )
        print(
            f"{'API / bare Query':<48} {connections:5d} {'':8} "
            f"{api.requests_per_second / query.requests_per_second:7.2f}x "
            f"{api.p50_ms / query.p50_ms:7.2f}x {api.p99_ms / query.p99_ms:7.2f}x"
        )
    print(
        f"{alone.label:<48} {4:5d} {alone.requests:8d} {alone.requests_per_second:8.1f} "
        f"{alone.p50_ms:8.1f} {alone.p99_ms:8.1f} {alone.errors:6d}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    runs = [{"api": asdict(api), "query": asdict(query)} for api, query in pairs]
    RESULTS.write_text(json.dumps({"runs": runs, "api_alone": asdict(alone)}, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument(
        "--connections",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 4],
        help="comma-separated concurrency levels, each run for both the API and the Query",
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    arguments = parser.parse_args()
    for name, value in LOCAL_AWS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    settings = Settings(
        dynamodb_table=f"bench-api-{uuid.uuid4().hex[:8]}",
        jwt_secret=SecretStr(secrets.token_urlsafe(32)),
        dynamodb_max_pool_connections=max(32, *arguments.connections),
    )
    work_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    with ExitStack() as stack:
        if settings.dynamodb_endpoint_url is None:
            # Naming the broker keeps dev_stack from starting one: only DynamoDB is needed.
            only_dynamodb = Settings(kafka_bootstrap_servers=settings.kafka_bootstrap_servers)
            running = stack.enter_context(dev_stack(only_dynamodb, work_dir))
            endpoint = running.endpoints.dynamodb_endpoint_url
            settings = settings.model_copy(update={"dynamodb_endpoint_url": endpoint})
        _log_access_to(work_dir / "access.log")
        report(asyncio.run(measure(settings, arguments)), arguments)


def _log_access_to(path: Path) -> None:
    """The access log stays on, as in production, but goes to a file rather than the terminal."""
    handler = logging.FileHandler(path)
    ACCESS_LOGGER.addHandler(handler)
    ACCESS_LOGGER.setLevel(logging.INFO)
    ACCESS_LOGGER.propagate = False
    print(f"access log: {path}")


if __name__ == "__main__":
    main()
