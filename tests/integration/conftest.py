"""Fixtures of the HTTP API tests: executions of two tenants, written through the repository."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from pydantic import SecretStr

from execution_stream.adapters.dynamodb_repository import (
    DynamoDBExecutionRepository,
    open_repository,
)
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import ExecutionKey, StatusChange
from execution_stream.settings import Settings
from tests.support.api import CURSOR_SECRET, SECRET, running_api
from tests.support.dataset import (
    API_PLAN_ITEMS,
    API_TENANT_SIZES,
    API_TENANTS,
    PATH_TO,
    ApiDataset,
    provision_table,
)
from tests.support.factories import BASE_TIME, execution

_WRITERS = 16


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
        running_api(repository, api_dataset.settings) as client,
    ):
        yield client
