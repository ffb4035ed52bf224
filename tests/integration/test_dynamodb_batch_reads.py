"""The dispatch step's read of a batch: consistent BatchGetItems of up to 100 keys, against each
local DynamoDB server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from execution_stream.adapters.dynamodb_repository import DynamoDBExecutionRepository, open_repository
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.domain.models import ExecutionStatus
from execution_stream.domain.store import ExecutionKey, StatusChange
from execution_stream.settings import Settings
from tests.support.factories import BASE_TIME, execution

pytestmark = pytest.mark.dynamodb_engines


@pytest.fixture
async def repository(stack_settings: Settings) -> AsyncIterator[DynamoDBExecutionRepository]:
    settings = stack_settings.model_copy(
        update={"dynamodb_table": f"Executions-reads-{uuid.uuid4().hex[:8]}"}
    )
    create_table(settings)
    async with open_repository(settings) as opened:
        yield opened


async def test_more_keys_than_one_request_takes_come_back_each_once_and_missing_ones_are_absent(
    repository: DynamoDBExecutionRepository,
) -> None:
    stored = [execution(f"tenant-{n % 3}", n) for n in range(230)]
    await repository.create_many(stored)
    missing = ExecutionKey("tenant-0", "event-missing", "execution-missing")
    keys = [ExecutionKey.of(e) for e in stored]

    found = await repository.get_many([*keys, missing, keys[0], keys[150]])

    assert found == {ExecutionKey.of(e): e for e in stored}


async def test_a_batch_read_sees_the_status_written_just_before(
    repository: DynamoDBExecutionRepository,
) -> None:
    stored = execution("tenant-a", 1)
    await repository.create(stored)
    change = StatusChange(ExecutionStatus.DISPATCHED, BASE_TIME)
    applied = await repository.update_status(ExecutionKey.of(stored), change, stored.plan_item_slug)

    found = await repository.get_many([ExecutionKey.of(stored)])

    assert found[ExecutionKey.of(stored)] == applied.execution
    assert found[ExecutionKey.of(stored)].status is ExecutionStatus.DISPATCHED


async def test_no_keys_reads_nothing(repository: DynamoDBExecutionRepository) -> None:
    assert await repository.get_many([]) == {}
