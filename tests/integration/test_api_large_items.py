"""GET /executions over items so large that DynamoDB ends a Query at 1 MB, before the page's limit.

A Query returns at most 1 MB of items, with a LastEvaluatedKey where it stopped. 150 executions of
~26 KB each take several responses for one page of 100: every one of them must still be listed once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_client import open_client
from execution_stream.adapters.dynamodb_repository import open_repository
from execution_stream.domain.executions import build_execution
from execution_stream.domain.models import Execution
from execution_stream.settings import Settings
from tests.support.api import CURSOR_SECRET, SECRET, listed, read_all, running_api
from tests.support.dataset import provision_table
from tests.support.factories import BASE_TIME, asset, trigger_event

pytestmark = pytest.mark.dynamodb_engines

TENANT = "tenant-large-items"
PLAN_ITEM = "item-large"
COUNT = 150
PADDING = "x" * 25_000
DYNAMODB_RESPONSE_BYTES = 1_000_000


def large_execution(number: int) -> Execution:
    event = trigger_event(
        TENANT,
        f"event-{number}",
        f"asset-{number}",
        PLAN_ITEM,
        additional_attributes={"padding": PADDING, "number": number},
    )
    return build_execution(event, asset(TENANT, f"asset-{number}"), BASE_TIME + timedelta(seconds=number))


@pytest.fixture(scope="module")
async def large_items(stack_settings: Settings) -> tuple[Settings, list[Execution]]:
    settings = stack_settings.model_copy(
        update={
            "dynamodb_table": f"Executions-large-{uuid.uuid4().hex[:8]}",
            "jwt_secret": SecretStr(SECRET),
            "cursor_secret": SecretStr(CURSOR_SECRET),
        }
    )
    await provision_table(settings)
    created = [large_execution(number) for number in range(COUNT)]
    async with open_repository(settings) as repository:
        assert all(result.created for result in await repository.create_many(created))
    return settings, created


@pytest.fixture(scope="module")
async def client(large_items: tuple[Settings, list[Execution]]) -> AsyncIterator[aiohttp.ClientSession]:
    settings = large_items[0]
    async with (
        open_repository(settings) as repository,
        running_api(repository, settings) as session,
    ):
        yield session


async def test_the_endpoint_ends_a_query_at_1_mb_before_the_limit(
    large_items: tuple[Settings, list[Execution]],
) -> None:
    """Without this cut the listing test below would pass whatever the repository does."""
    settings, _ = large_items
    index = keys.index_for_filter(TENANT, None, None)
    async with open_client(settings) as dynamodb:
        response = await dynamodb.query(
            TableName=settings.dynamodb_table,
            IndexName=index.index.value,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": index.partition_key_name},
            ExpressionAttributeValues={":pk": {"S": index.partition_key_value}},
            ScanIndexForward=False,
            Limit=101,
        )

    assert "LastEvaluatedKey" in response
    assert len(response["Items"]) * len(PADDING) < DYNAMODB_RESPONSE_BYTES
    assert len(response["Items"]) < 50


@pytest.mark.parametrize("query", ["", f"&plan_item_slug={PLAN_ITEM}"])
async def test_pages_of_100_over_items_cut_at_1_mb_list_every_execution_once(
    client: aiohttp.ClientSession, large_items: tuple[Settings, list[Execution]], query: str
) -> None:
    _, created = large_items
    pages = await read_all(client, TENANT, query, limit=100)

    items: list[dict[str, Any]] = [item for page in pages for item in page]
    assert [len(page) for page in pages] == [100, 50]
    assert items == [listed(e) for e in sorted(created, key=lambda e: e.created_at, reverse=True)]
