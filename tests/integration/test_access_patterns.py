"""Access patterns 1-4 over 250 executions of two tenants: exactly the right items, newest first."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from execution_stream.adapters.dynamodb_repository import (
    DynamoDBExecutionRepository,
    open_repository,
)
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import ExecutionKey, ExecutionQuery, StatusChange
from execution_stream.settings import Settings
from tests.support.factories import BASE_TIME, execution

pytestmark = pytest.mark.dynamodb_engines

S = ExecutionStatus
PLAN_ITEMS = ["item-sast", "item-sca", "item-iac"]
# The statuses the 250 executions end in, and how each gets there.
PATHS = {
    S.PENDING: [],
    S.DISPATCHED: [S.DISPATCHED],
    S.RUNNING: [S.DISPATCHED, S.RUNNING],
    S.COMPLETED: [S.DISPATCHED, S.COMPLETED],
    S.FAILED: [S.FAILED],
}


@dataclass(frozen=True)
class Dataset:
    tenants: tuple[str, str]
    executions: list[Execution]

    def expected(self, tenant: str, status: S | None, plan_item: str | None) -> list[str]:
        matching = [
            e
            for e in self.executions
            if e.tenant_id == tenant and status in (None, e.status) and plan_item in (None, e.plan_item_slug)
        ]
        return [e.execution_id for e in sorted(matching, key=lambda e: e.created_at, reverse=True)]


@pytest.fixture(scope="module")
async def dataset(stack_settings: Settings) -> tuple[Dataset, Settings]:
    settings = stack_settings.model_copy(update={"dynamodb_table": "Executions-access-patterns"})
    create_table(settings)
    tenants = ("tenant-a", "tenant-b")
    statuses = list(PATHS)
    created = []
    async with open_repository(settings) as repository:
        for number in range(250):
            tenant = tenants[number % 7 == 0]
            slug = PLAN_ITEMS[number % 3]
            moment = BASE_TIME + timedelta(seconds=(number * 7919) % 250)
            created.append(execution(tenant, number, slug, moment))
        await repository.create_many(created)
        final = []
        for number, stored in enumerate(created):
            status = statuses[number % len(statuses)]
            for next_status in PATHS[status]:
                change = StatusChange(next_status, BASE_TIME + timedelta(days=1))
                await repository.update_status(ExecutionKey.of(stored), change, stored.plan_item_slug)
            final.append(stored.model_copy(update={"status": status}))
    return Dataset(tenants, final), settings


@pytest.fixture
async def repository(
    dataset: tuple[Dataset, Settings],
) -> AsyncIterator[DynamoDBExecutionRepository]:
    async with open_repository(dataset[1]) as opened:
        yield opened


async def read_all(repository: DynamoDBExecutionRepository, query: ExecutionQuery) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    while True:
        page = await repository.list(query)
        pages += 1
        assert len(page.items) <= query.limit
        ids += [e.execution_id for e in page.items]
        if page.next_key is None:
            return ids, pages
        assert len(page.items) == query.limit
        query = ExecutionQuery(
            query.tenant_id, query.status, query.plan_item_slug, query.limit, page.next_key
        )


FILTERS = list(itertools.product(["tenant-a", "tenant-b"], [None, *PATHS], [None, *PLAN_ITEMS]))


@pytest.mark.parametrize(("tenant", "status", "plan_item"), FILTERS)
async def test_each_filter_returns_exactly_the_matching_items_newest_first(
    repository: DynamoDBExecutionRepository,
    dataset: tuple[Dataset, Settings],
    tenant: str,
    status: S | None,
    plan_item: str | None,
) -> None:
    expected = dataset[0].expected(tenant, status, plan_item)
    ids, _ = await read_all(repository, ExecutionQuery(tenant, status, plan_item, limit=100))

    assert ids == expected
    assert expected


@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_paging_returns_every_item_exactly_once_in_order(
    repository: DynamoDBExecutionRepository, dataset: tuple[Dataset, Settings], limit: int
) -> None:
    data = dataset[0]
    for tenant in data.tenants:
        ids, pages = await read_all(repository, ExecutionQuery(tenant, limit=limit))
        expected = data.expected(tenant, None, None)
        assert ids == expected
        assert pages == max(1, -(-len(expected) // limit))


async def test_the_two_tenants_together_hold_all_250(dataset: tuple[Dataset, Settings]) -> None:
    data = dataset[0]
    sizes = [len(data.expected(tenant, None, None)) for tenant in data.tenants]
    assert sum(sizes) == 250
    assert min(sizes) > 30
