"""D: what raw aiobotocore writes to the DynamoDB endpoint, items of the real size and shape.

The ceiling is the conditional PutItem the pipeline's create issues (`attribute_not_exists(PK)`,
ALL_OLD on a failed condition), at the best of a few concurrencies. For reference, on the same
endpoint: plain BatchWriteItem (25 items a request, no condition), the consistent GetItem and the
conditional UpdateItem (pending -> dispatched) the dispatch step issues, and the repository's own
`create_many` (codec and write concurrency included).

Every request is built before the clock starts: these are the endpoint's and the client's costs.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import psutil

from bench.observe import OTHERS, CpuShare, cpu_seconds
from bench.progress import Progress
from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters import dynamodb_status
from execution_stream.adapters.dynamodb_client import open_client, to_attribute_values
from execution_stream.adapters.dynamodb_item_codec import execution_to_item
from execution_stream.adapters.dynamodb_repository import DynamoDBExecutionRepository
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import ExecutionKey, StatusChange
from execution_stream.settings import Settings
from tests.support.factories import execution

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
    from types_aiobotocore_dynamodb.literals import ReturnValueType

BATCH_WRITE_MAX_ITEMS = 25
BATCH_WRITE_CONCURRENCY = 4
BATCH_GET_MAX_KEYS = 100
WARM_UP_REQUESTS = 20
NOT_STORED = "attribute_not_exists(PK)"
Request = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Rate:
    per_second: float
    # CPU the endpoint's process spent per item (None where this process did not start it).
    endpoint_cpu_ms: float | None
    # CPU cores the rest of the machine used meanwhile (other work skews the figure).
    others_cores: float


@dataclass(frozen=True)
class DynamoDBCeiling:
    items: int
    item_bytes: int
    conditional_put: dict[int, Rate]
    best_concurrency: int
    batch_write: Rate
    consistent_get: Rate
    batch_get: Rate
    update_all_old: Rate
    update_no_return: Rate
    create_many: Rate
    create_many_concurrency: int

    @property
    def conditional_put_best(self) -> float:
        return self.conditional_put[self.best_concurrency].per_second

    def pipeline_bound(self) -> float:
        """Executions/s the endpoint allows for what each costs in P: put, get, update (ALL_OLD)."""
        costs = (self.conditional_put[self.best_concurrency], self.consistent_get, self.update_all_old)
        return 1 / sum(1 / rate.per_second for rate in costs)

    def batched_read_bound(self) -> float:
        """The same with the dispatch step's reads batched and its update returning nothing."""
        costs = (self.conditional_put[self.best_concurrency], self.batch_get, self.update_no_return)
        return 1 / sum(1 / rate.per_second for rate in costs)


def executions_of_new_tenant(count: int) -> list[Execution]:
    tenant = f"bench-d-{uuid.uuid4().hex[:8]}"
    return [execution(tenant, number) for number in range(count)]


@dataclass(frozen=True)
class Runner:
    """Runs requests `concurrency` at a time, timing them and the endpoint's CPU."""

    endpoint: psutil.Process | None

    async def run(self, requests: Sequence[Request], concurrency: int, label: str, per: float = 1) -> Rate:
        """Items/s, where each request carries `per` items; the endpoint's CPU per item."""
        pending: Iterator[Request] = iter(requests)

        async def worker(progress: Progress) -> None:
            for request in pending:
                await request()
                progress.advance()

        ours = {"bench": psutil.Process()} | ({"dynamodb": self.endpoint} if self.endpoint else {})
        before = cpu_seconds(ours)
        with Progress(label, len(requests)) as progress:
            started = time.perf_counter()
            await asyncio.gather(*(worker(progress) for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        cpu = CpuShare.between(before, cpu_seconds(ours), elapsed).cores
        items = len(requests) * per
        endpoint_ms = cpu["dynamodb"] * elapsed * 1000 / items if "dynamodb" in cpu else None
        return Rate(items / elapsed, endpoint_ms, cpu[OTHERS])


def conditional_puts(client: DynamoDBClient, table: str, items: Sequence[Execution]) -> list[Request]:
    def put(item: dict[str, Any]) -> Request:
        return lambda: client.put_item(
            TableName=table,
            Item=item,
            ConditionExpression=NOT_STORED,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    return [put(to_attribute_values(execution_to_item(e))) for e in items]


def consistent_gets(client: DynamoDBClient, table: str, items: Sequence[Execution]) -> list[Request]:
    def get(key: dict[str, Any]) -> Request:
        return lambda: client.get_item(TableName=table, Key=key, ConsistentRead=True)

    return [get(primary_key(ExecutionKey.of(e))) for e in items]


def dispatched_updates(
    client: DynamoDBClient, table: str, items: Sequence[Execution], returned: ReturnValueType = "ALL_OLD"
) -> list[Any]:
    """The repository's UpdateItem pending -> dispatched, returning the old item as it does."""
    change = StatusChange(ExecutionStatus.DISPATCHED, datetime.now(UTC))

    def update(execution: Execution) -> Request:
        key = ExecutionKey.of(execution)
        request = dynamodb_status.status_update(key, change, execution.plan_item_slug)
        return lambda: client.update_item(
            TableName=table,
            Key=primary_key(key),
            ReturnValues=returned,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
            **request,
        )

    return [update(e) for e in items]


def batch_writes(client: DynamoDBClient, table: str, items: Sequence[Execution]) -> list[Request]:
    def write(chunk: Sequence[Execution]) -> Request:
        requests = [{"PutRequest": {"Item": to_attribute_values(execution_to_item(e))}} for e in chunk]

        async def send() -> None:
            pending: Any = {table: requests}
            while pending:
                response = await client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}

        return send

    step = BATCH_WRITE_MAX_ITEMS
    return [write(items[i : i + step]) for i in range(0, len(items), step)]


def batch_gets(client: DynamoDBClient, table: str, items: Sequence[Execution]) -> list[Request]:
    def read(chunk: Sequence[Execution]) -> Request:
        keys = [primary_key(ExecutionKey.of(e)) for e in chunk]

        async def send() -> None:
            pending: Any = {table: {"Keys": keys, "ConsistentRead": True}}
            while pending:
                response = await client.batch_get_item(RequestItems=pending)
                pending = response.get("UnprocessedKeys") or {}

        return send

    step = BATCH_GET_MAX_KEYS
    return [read(items[i : i + step]) for i in range(0, len(items), step)]


def primary_key(key: ExecutionKey) -> dict[str, Any]:
    return {
        keys.PK: {"S": keys.partition_key(key.tenant_id)},
        keys.SK: {"S": keys.sort_key(key.jit_event_id, key.execution_id)},
    }


async def sweep_puts(
    runner: Runner, client: DynamoDBClient, table: str, count: int, concurrencies: Sequence[int]
) -> tuple[dict[int, Rate], dict[int, list[Execution]]]:
    """Conditional puts of `count` new items at each concurrency; the rates and the items stored."""
    await runner.run(
        conditional_puts(client, table, executions_of_new_tenant(WARM_UP_REQUESTS)), 4, "D: warm-up"
    )
    puts: dict[int, Rate] = {}
    stored: dict[int, list[Execution]] = {}
    for concurrency in concurrencies:
        stored[concurrency] = executions_of_new_tenant(count)
        requests = conditional_puts(client, table, stored[concurrency])
        puts[concurrency] = await runner.run(requests, concurrency, f"D: conditional PutItem x{concurrency}")
    return puts, stored


async def dynamodb_ceiling(
    settings: Settings, count: int, concurrencies: Sequence[int], endpoint: psutil.Process | None
) -> DynamoDBCeiling:
    await asyncio.to_thread(create_table, settings)
    table, runner, in_flight = settings.dynamodb_table, Runner(endpoint), BATCH_WRITE_CONCURRENCY
    async with open_client(settings) as client:
        puts, stored = await sweep_puts(runner, client, table, count, concurrencies)
        best = max(puts, key=lambda c: puts[c].per_second)
        items, batch_items = stored[best], executions_of_new_tenant(count)
        batches = batch_writes(client, table, batch_items)
        batch = await runner.run(batches, in_flight, f"D: BatchWriteItem x{in_flight}", count / len(batches))
        gets = await runner.run(consistent_gets(client, table, items), best, f"D: GetItem x{best}")
        reads = batch_gets(client, table, items)
        batch_get = await runner.run(reads, in_flight, f"D: BatchGetItem x{in_flight}", count / len(reads))
        updates = dispatched_updates(client, table, items)
        update_all_old = await runner.run(updates, best, f"D: UpdateItem ALL_OLD x{best}")
        updates = dispatched_updates(client, table, batch_items, returned="NONE")
        update_no_return = await runner.run(updates, best, f"D: UpdateItem NONE x{best}")
        writes = settings.dynamodb_write_concurrency
        create = partial(
            DynamoDBExecutionRepository(client, table, writes).create_many, executions_of_new_tenant(count)
        )
        create_many = await runner.run([create], 1, f"D: repository.create_many x{writes}", per=count)
    size = round(sum(len(json.dumps(execution_to_item(e), default=str)) for e in items) / len(items))
    return DynamoDBCeiling(
        items=count,
        item_bytes=size,
        conditional_put=puts,
        best_concurrency=best,
        batch_write=batch,
        consistent_get=gets,
        batch_get=batch_get,
        update_all_old=update_all_old,
        update_no_return=update_no_return,
        create_many=create_many,
        create_many_concurrency=writes,
    )
