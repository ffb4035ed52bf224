"""Fixtures of the HTTP API tests: executions of two tenants, written through the repository."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from execution_stream.adapters.dynamodb_reads import open_reader
from execution_stream.adapters.dynamodb_repository import (
    DynamoDBExecutionRepository,
    open_repository,
)
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.ports import ExecutionKey, StatusChange
from execution_stream.settings import Settings
from tests.factories import BASE_TIME, execution
from tests.unit.test_api_support import CURSOR_SECRET, SECRET, running_api

S = ExecutionStatus
API_TENANTS = ("tenant-api-a", "tenant-api-b")
API_TENANT_SIZES = (250, 40)
API_PLAN_ITEMS = ("item-sast", "item-sca", "item-iac")
# How an execution reaches each status it ends in (allowed transitions only).
PATH_TO: dict[ExecutionStatus, list[ExecutionStatus]] = {
    S.PENDING: [],
    S.DISPATCHED: [S.DISPATCHED],
    S.RUNNING: [S.DISPATCHED, S.RUNNING],
    S.COMPLETED: [S.DISPATCHED, S.RUNNING, S.COMPLETED],
    S.FAILED: [S.DISPATCHED, S.FAILED],
    S.CANCELED: [S.CANCELED],
}
_WRITERS = 16


async def provision_table(settings: Settings) -> None:
    """create_table is blocking boto3: run it off the event loop."""
    await asyncio.to_thread(create_table, settings)


@dataclass(frozen=True)
class ApiDataset:
    settings: Settings
    executions: list[Execution]  # as stored now, statuses applied

    def expected(
        self,
        tenant_id: str,
        status: ExecutionStatus | None = None,
        plan_item_slug: str | None = None,
    ) -> list[Execution]:
        matching = [
            e
            for e in self.executions
            if e.tenant_id == tenant_id
            and status in (None, e.status)
            and plan_item_slug in (None, e.plan_item_slug)
        ]
        return sorted(matching, key=lambda e: e.created_at, reverse=True)


def _dataset_executions() -> list[Execution]:
    created = []
    for tenant_id, size in zip(API_TENANTS, API_TENANT_SIZES, strict=True):
        for number in range(size):
            # Creation times are distinct but not in the order of writing.
            moment = BASE_TIME + timedelta(seconds=(number * 7919) % size)
            slug = API_PLAN_ITEMS[number % len(API_PLAN_ITEMS)]
            created.append(execution(tenant_id, number, slug, moment))
    return created


async def _move(
    repository: DynamoDBExecutionRepository, stored: Execution, status: ExecutionStatus
) -> Execution:
    current = stored
    for step, next_status in enumerate(PATH_TO[status], start=1):
        change = StatusChange(next_status, BASE_TIME + timedelta(days=1, minutes=step))
        result = await repository.update_status(ExecutionKey.of(current), change, stored.plan_item_slug)
        assert result.applied, result
        assert result.execution is not None
        current = result.execution
    return current


@pytest.fixture(scope="session")
async def api_dataset(stack_settings: Settings) -> ApiDataset:
    settings = stack_settings.model_copy(
        update={
            "dynamodb_table": f"Executions-api-{uuid.uuid4().hex[:8]}",
            "jwt_secret": SecretStr(SECRET),
            "cursor_secret": SecretStr(CURSOR_SECRET),
        }
    )
    await provision_table(settings)
    created = _dataset_executions()
    statuses = list(PATH_TO)
    writers = asyncio.Semaphore(_WRITERS)
    async with open_repository(settings) as repository:
        results = await repository.create_many(created)
        assert all(result.created for result in results)

        async def settle(number: int, stored: Execution) -> Execution:
            async with writers:
                return await _move(
                    repository, stored, statuses[(number // len(API_PLAN_ITEMS)) % len(statuses)]
                )

        final = await asyncio.gather(*(settle(n, e) for n, e in enumerate(created)))
    return ApiDataset(settings, list(final))


@pytest.fixture(scope="session")
async def api_client(api_dataset: ApiDataset) -> AsyncIterator[aiohttp.ClientSession]:
    """The API in front of the real DynamoDB endpoint, on a free loopback port."""
    async with (
        open_repository(api_dataset.settings) as repository,
        open_reader(api_dataset.settings) as reader,
        running_api(repository, api_dataset.settings, reader) as client,
    ):
        yield client
