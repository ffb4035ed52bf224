"""GET /executions?limit=20 under load, against a bare DynamoDB Query of 20 items, in one run.

    python -m bench.api_load [--executions 10000] [--connections 1,4] [--seconds 30]

Stores the executions of one tenant (BatchWriteItem, the items the repository writes), starts
`execution-stream api` in a process of its own and loads it with wrk (or, without wrk, a bounded
aiohttp client loop in this process), then runs the same Query from one aiobotocore client with as
many concurrent requests. `python -m bench` runs the same comparison (`api_comparison`) on each
endpoint; this entry point tries several concurrencies, and the API alone over a page held in
memory. DynamoDB is the endpoint EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL names, or the local one
`dev_stack` starts for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

from bench.api_comparison import api_settings, compare_at, stored_tenant
from bench.api_requests import PAGE, Load, load_api, token_for
from execution_stream.adapters.dynamodb_repository import open_repository
from execution_stream.api.access_log import ACCESS_LOGGER
from execution_stream.api.app import build_api
from execution_stream.api.server import serving
from execution_stream.dev import LOCAL_AWS_DEFAULTS
from execution_stream.dev_stack.stack import dev_stack
from execution_stream.domain.models import Execution
from execution_stream.domain.store import ExecutionPage, ExecutionQuery, QueueSnapshot
from execution_stream.settings import Settings

RESULTS = Path(__file__).parent / "results" / "api_load.json"


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


async def measure(
    settings: Settings, arguments: argparse.Namespace, work_dir: Path
) -> tuple[list[tuple[Load, Load]], Load]:
    tenant, _ = await stored_tenant(settings, arguments.executions)
    pairs = []
    for connections in arguments.connections:
        (api, _), (query, _) = await compare_at(
            settings,
            tenant,
            connections=connections,
            seconds=arguments.seconds,
            log_path=work_dir / "api.log",
            dynamodb=None,
        )
        pairs.append((api, query))
    token = token_for(settings, tenant)
    return pairs, await load_api_alone(settings, tenant, token, arguments.seconds)


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
    settings = api_settings(Settings(), max(arguments.connections))
    work_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    with ExitStack() as stack:
        if settings.dynamodb_endpoint_url is None:
            # Naming the broker keeps dev_stack from starting one: only DynamoDB is needed.
            only_dynamodb = Settings(kafka_bootstrap_servers=settings.kafka_bootstrap_servers)
            running = stack.enter_context(dev_stack(only_dynamodb, work_dir))
            endpoint = running.endpoints.dynamodb_endpoint_url
            settings = settings.model_copy(update={"dynamodb_endpoint_url": endpoint})
        _log_access_to(work_dir / "access.log")
        print(f"the API's log: {work_dir / 'api.log'}")
        report(asyncio.run(measure(settings, arguments, work_dir)), arguments)


def _log_access_to(path: Path) -> None:
    """The access log stays on, as in production, but goes to a file rather than the terminal
    (for the API served in this process, over a page held in memory)."""
    handler = logging.FileHandler(path)
    ACCESS_LOGGER.addHandler(handler)
    ACCESS_LOGGER.setLevel(logging.INFO)
    ACCESS_LOGGER.propagate = False
    print(f"access log: {path}")


if __name__ == "__main__":
    main()
