"""Waiting fields and GET /executions/{id} against the real DynamoDB endpoint.

Items carrying the worker's `waiting_for_asset` / `queue_index`, and runner queue snapshots, are
put directly with the client, as the worker writes them, or by the worker's queue view writer
(priority classes).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_client import open_client, to_attribute_values
from execution_stream.adapters.dynamodb_item_codec import execution_to_item
from execution_stream.adapters.dynamodb_queue_view import DynamoDBQueueView
from execution_stream.adapters.dynamodb_reads import DynamoDBExecutionReader, open_reader
from execution_stream.adapters.dynamodb_repository import open_repository
from execution_stream.domain.allocation import ClassQueue, Queued, RunnerLine
from execution_stream.domain.executions import apply_status
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import QueueClass
from execution_stream.settings import Settings
from tests.support.api import CURSOR_SECRET, SECRET, bearer, listed, running_api
from tests.support.dataset import provision_table
from tests.support.factories import BASE_TIME, execution

pytestmark = pytest.mark.dynamodb_engines

A, B, C = "tenant-wait-a", "tenant-wait-b", "tenant-wait-c"
RUNNER, HASHED = "github_actions", "runner#with#hashes"
MANY_RUNNERS = [f"runner-{n}" for n in range(130)]  # more than one BatchGetItem holds


@dataclass(frozen=True)
class Stored:
    settings: Settings
    mine: list[Execution]  # newest last
    theirs: Execution


def queued(number: int, index: int, runner: str = RUNNER, tenant_id: str = A) -> Execution:
    return execution(tenant_id, number).model_copy(update={"queue_index": index, "job_runner": runner})


def snapshot_item(tenant_id: str, runner: str, head: int, limit: int = 2, in_use: int = 2) -> dict[str, Any]:
    figures = {"limit": limit, "in_use": in_use, "head_index": head, "queued": 5, "version": 3}
    return {
        **keys.queue_snapshot_key(tenant_id, runner),
        "tenant_id": tenant_id,
        "job_runner": runner,
        "updated_at": "2026-01-01T00:00:01.000000",
        **figures,
    }


def executions_of_a() -> list[Execution]:
    return [
        queued(0, 3),  # the head (4) has passed it
        queued(1, 4),
        queued(2, 6),
        queued(3, 10, HASHED),
        execution(A, 4).model_copy(update={"waiting_for_asset": "asset-4", "asset_name": "", "vendor": ""}),
        apply_status(queued(5, 2), ExecutionStatus.DISPATCHED, BASE_TIME),
        queued(6, 1, "runner-with-a-malformed-snapshot"),
        queued(7, 0, "runner-without-snapshot"),
    ]


def snapshot_items() -> list[dict[str, Any]]:
    malformed = snapshot_item(A, "runner-with-a-malformed-snapshot", 0)
    del malformed["head_index"]
    return [
        snapshot_item(A, RUNNER, head=4, limit=2, in_use=2),
        snapshot_item(A, HASHED, head=7, limit=1, in_use=1),
        snapshot_item(B, "runner-without-snapshot", head=0),  # another tenant's queue
        malformed,
        *(snapshot_item(A, runner, head=n) for n, runner in enumerate(MANY_RUNNERS)),
    ]


@pytest.fixture(scope="module")
async def stored(stack_settings: Settings) -> Stored:
    settings = stack_settings.model_copy(
        update={
            "dynamodb_table": f"Executions-wait-{uuid.uuid4().hex[:8]}",
            "jwt_secret": SecretStr(SECRET),
            "cursor_secret": SecretStr(CURSOR_SECRET),
        }
    )
    await provision_table(settings)
    mine, theirs = executions_of_a(), queued(0, 0, tenant_id=B)
    items = [execution_to_item(e) for e in [*mine, theirs]] + snapshot_items()
    async with open_client(settings) as client:
        for item in items:
            await client.put_item(TableName=settings.dynamodb_table, Item=to_attribute_values(item))
    return Stored(settings, mine, theirs)


@pytest.fixture(scope="module")
async def client(stored: Stored) -> AsyncIterator[aiohttp.ClientSession]:
    async with (
        open_repository(stored.settings) as repository,
        running_api(repository, stored.settings) as session,
    ):
        yield session


@pytest.fixture
async def reader(stored: Stored) -> AsyncIterator[DynamoDBExecutionReader]:
    async with open_reader(stored.settings) as opened:
        yield opened


async def get_json(client: aiohttp.ClientSession, path: str, tenant_id: str = A) -> tuple[int, Any]:
    async with client.get(path, headers=bearer(tenant_id)) as response:
        return response.status, await response.json()


def expected_items(mine: list[Execution]) -> list[dict[str, Any]]:
    """Newest first, as the listing returns them."""
    capacity = {"waiting_reason": "capacity"}
    return [
        listed(mine[7]),
        listed(mine[6]),
        listed(mine[5]),
        listed(mine[4], waiting_reason="asset"),
        listed(mine[3], **capacity, queue_position=4, limit=1, in_use=1),
        listed(mine[2], **capacity, queue_position=3, limit=2, in_use=2),
        listed(mine[1], **capacity, queue_position=1, limit=2, in_use=2),
        listed(mine[0]),
    ]


async def test_the_listing_says_why_pending_executions_wait(
    client: aiohttp.ClientSession, stored: Stored
) -> None:
    status, body = await get_json(client, "/executions")
    assert status == 200
    assert body["data"] == expected_items(stored.mine)
    assert body["metadata"] == {"count": 8, "after": None}


async def test_the_pending_filter_has_the_same_waiting_fields(
    client: aiohttp.ClientSession, stored: Stored
) -> None:
    status, body = await get_json(client, "/executions?status=pending&limit=3")
    assert status == 200
    pending = [item for item in expected_items(stored.mine) if item["status"] == "pending"]
    assert body["data"] == pending[:3]


async def test_one_execution_by_id(client: aiohttp.ClientSession, stored: Stored) -> None:
    expected = {item["execution_id"]: item for item in expected_items(stored.mine)}
    for one in stored.mine:
        status, body = await get_json(client, f"/executions/{one.execution_id}")
        assert (status, body) == (200, expected[one.execution_id])
        assert body["GSI5PK"] == f"TENANT#{A}#EXECUTION#{one.execution_id}"


async def test_another_tenants_id_is_404_like_an_unknown_one(
    client: aiohttp.ClientSession, stored: Stored
) -> None:
    theirs = stored.theirs.execution_id
    assert (await get_json(client, f"/executions/{theirs}", B))[0] == 200
    for execution_id in (theirs, uuid.uuid4().hex):
        status, body = await get_json(client, f"/executions/{execution_id}", A)
        assert (status, body["error"]) == (
            404,
            {"code": "not_found", "message": f"no execution {execution_id!r}"},
        )


@pytest.mark.parametrize("execution_id", ["nope", "F" * 32, "0" * 31, str(uuid.UUID(int=7))])
async def test_a_malformed_id_is_400(client: aiohttp.ClientSession, execution_id: str) -> None:
    status, body = await get_json(client, f"/executions/{execution_id}")
    assert (status, body["error"]["code"]) == (400, "invalid_execution_id")


async def test_snapshots_are_read_by_runner_in_batches_of_at_most_100(
    reader: DynamoDBExecutionReader,
) -> None:
    runners = frozenset(
        [*MANY_RUNNERS, HASHED, "runner-without-snapshot", "runner-with-a-malformed-snapshot"]
    )
    snapshots = await reader.queue_snapshots(A, runners)
    assert set(snapshots) == {*MANY_RUNNERS, HASHED}
    assert [snapshots[runner].head_index for runner in MANY_RUNNERS] == list(range(len(MANY_RUNNERS)))
    hashed = snapshots[HASHED]
    assert (hashed.tenant_id, hashed.job_runner, hashed.limit, hashed.in_use, hashed.head_index) == (
        A,
        HASHED,
        1,
        1,
        7,
    )
    assert (hashed.queued, hashed.version, hashed.updated_at) == (5, 3, "2026-01-01T00:00:01.000000")
    assert await reader.queue_snapshots(B, frozenset({RUNNER})) == {}


async def test_find_is_scoped_to_the_tenant(reader: DynamoDBExecutionReader, stored: Stored) -> None:
    found = await reader.find(A, stored.mine[4].execution_id)
    assert found == stored.mine[4]
    assert found is not None
    assert found.waiting_for_asset == "asset-4"
    assert await reader.find(A, stored.theirs.execution_id) is None
    assert await reader.find(B, stored.theirs.execution_id) == stored.theirs


async def test_the_queue_view_writes_priority_classes_that_the_reader_and_the_listing_use(
    stored: Stored, reader: DynamoDBExecutionReader, client: aiohttp.ClientSession
) -> None:
    waiting = [execution(C, n).model_copy(update={"job_runner": RUNNER}) for n in range(2)]
    line = RunnerLine(
        2, 4, head=6, tail=9, version=7, classes={0: ClassQueue(6, 9, 3), 5: ClassQueue(3, 4, 1)}
    )
    async with open_client(stored.settings) as dynamodb:
        for one in waiting:
            item = to_attribute_values(execution_to_item(one))
            await dynamodb.put_item(TableName=stored.settings.dynamodb_table, Item=item)
        view = DynamoDBQueueView(dynamodb, stored.settings.dynamodb_table, 60.0, 4, 100)
        view.queued(Queued(C, waiting[0].execution_id, waiting[0].jit_event_id, RUNNER, 3, 5))
        view.queued(Queued(C, waiting[1].execution_id, waiting[1].jit_event_id, RUNNER, 8))
        view.line_changed(C, RUNNER, line, 2)
        await view.flush()

    snapshot = (await reader.queue_snapshots(C, frozenset({RUNNER})))[RUNNER]
    assert snapshot.classes == {0: QueueClass(6, 3), 5: QueueClass(3, 1)}
    assert (snapshot.head_index, snapshot.queued, snapshot.version) == (6, 4, 7)
    found = [await reader.find(C, one.execution_id) for one in waiting]
    assert [(f.queue_index, f.queue_priority) for f in found if f is not None] == [(3, 5), (8, 0)]
    status, body = await get_json(client, "/executions", C)
    assert status == 200
    positions = {item["execution_id"]: item["queue_position"] for item in body["data"]}
    assert positions == {waiting[0].execution_id: 1, waiting[1].execution_id: 4}
    assert not any("queue_priority" in item for item in body["data"])
