"""Batch create of executions against plain BatchWriteItem of the same items, in one run.

    python -m bench.batch_create [--n 2000]

Uses the endpoint EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL names, or starts moto's server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from execution_stream.adapters.dynamodb_client import open_client, to_attribute_values
from execution_stream.adapters.dynamodb_repository import DynamoDBExecutionRepository
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.dev import LOCAL_AWS_DEFAULTS
from execution_stream.domain.item_codec import execution_to_item
from execution_stream.domain.models import Execution
from execution_stream.localstack.dynamodb_server import DynamoDBServer
from execution_stream.settings import Settings
from tests.factories import execution

BATCH_WRITE_MAX_ITEMS = 25


def executions(count: int) -> list[Execution]:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    return [execution(tenant, number) for number in range(count)]


async def timed(label: str, count: int, run: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await run()
    rate = count / (time.perf_counter() - started)
    print(f"{label:<48} {rate:9.0f} items/s")
    return rate


async def batch_write(settings: Settings, items: Sequence[Execution], concurrency: int) -> None:
    async with open_client(settings) as client:
        limit = asyncio.Semaphore(concurrency)

        async def write(chunk: Sequence[Execution]) -> None:
            requests = [{"PutRequest": {"Item": to_attribute_values(execution_to_item(e))}} for e in chunk]
            async with limit:
                pending = {settings.dynamodb_table: requests}
                while pending:
                    response = await client.batch_write_item(RequestItems=pending)  # type: ignore[arg-type]
                    pending = response.get("UnprocessedItems") or {}  # type: ignore[assignment]

        step = BATCH_WRITE_MAX_ITEMS
        await asyncio.gather(*(write(items[i : i + step]) for i in range(0, len(items), step)))


async def measure(settings: Settings, count: int) -> dict[str, float]:
    async with open_client(settings) as client:
        repository = DynamoDBExecutionRepository(
            client, settings.dynamodb_table, settings.dynamodb_write_concurrency
        )
        rates = {
            "batch_write_item": await timed(
                "BatchWriteItem (25/request, 4 concurrent)",
                count,
                lambda: batch_write(settings, executions(count), 4),
            ),
            "create_many": await timed(
                "create_many (conditional puts, 16 concurrent)",
                count,
                lambda: repository.create_many(executions(count)),
            ),
            "create_many_replay": 0.0,
        }
        replay = executions(count)
        await repository.create_many(replay)
        rates["create_many_replay"] = await timed(
            "create_many replayed (all exist already)",
            count,
            lambda: repository.create_many(replay),
        )
    print(f"create_many / BatchWriteItem = {rates['create_many'] / rates['batch_write_item']:.2f}")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    arguments = parser.parse_args()
    for name, value in LOCAL_AWS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    settings = Settings(dynamodb_table=f"bench-{uuid.uuid4().hex[:8]}")
    server = None
    if settings.dynamodb_endpoint_url is None:
        server = DynamoDBServer(Path(tempfile.mkdtemp(prefix="bench-")))
        server.start()
        settings = settings.model_copy(update={"dynamodb_endpoint_url": server.endpoint_url})
    try:
        create_table(settings)
        asyncio.run(measure(settings, arguments.n))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
