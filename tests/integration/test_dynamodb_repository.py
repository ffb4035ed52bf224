"""The repository against the DynamoDB endpoint: conditional writes, transitions, errors."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta

import boto3
import pytest

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_repository import (
    DynamoDBExecutionRepository,
    open_repository,
)
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.domain.executions import build_waiting_execution
from execution_stream.domain.lifecycle import is_transition_allowed
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import (
    ExecutionKey,
    ExecutionQuery,
    InvalidPageKeyError,
    RepositoryError,
    RepositoryUnavailableError,
    StatusChange,
    UpdateOutcome,
)
from execution_stream.domain.timestamps import format_timestamp
from execution_stream.settings import Settings
from tests.support.dataset import PATH_TO
from tests.support.factories import BASE_TIME, asset, execution, trigger_event

pytestmark = pytest.mark.dynamodb_engines

S = ExecutionStatus


@pytest.fixture(scope="session")
def repository_settings(stack_settings: Settings) -> Settings:
    settings = stack_settings.model_copy(update={"dynamodb_table": "Executions-repository-tests"})
    create_table(settings)
    return settings


@pytest.fixture
async def repository(repository_settings: Settings) -> AsyncIterator[DynamoDBExecutionRepository]:
    async with open_repository(repository_settings) as opened:
        yield opened


def raw_item(settings: Settings, stored: Execution) -> dict[str, object]:
    client = boto3.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url)
    key = {
        "PK": {"S": keys.partition_key(stored.tenant_id)},
        "SK": {"S": keys.sort_key(stored.jit_event_id, stored.execution_id)},
    }
    item = client.get_item(TableName=settings.dynamodb_table, Key=key, ConsistentRead=True)["Item"]
    return {name: next(iter(value.values())) for name, value in item.items()}


async def move_to(
    repository: DynamoDBExecutionRepository, stored: Execution, status: ExecutionStatus
) -> None:
    for step, next_status in enumerate(PATH_TO[status]):
        change = StatusChange(next_status, BASE_TIME + timedelta(minutes=step + 1))
        result = await repository.update_status(ExecutionKey.of(stored), change)
        assert result.applied, (next_status, result)


async def test_create_is_conditional(repository: DynamoDBExecutionRepository, unique: str) -> None:
    stored = execution(f"tenant-{unique}")
    first = await repository.create(stored)
    second = await repository.create(stored.model_copy(update={"job_name": "changed"}))

    assert (first.created, second.created) == (True, False)
    assert second.execution == stored
    assert await repository.get(ExecutionKey.of(stored)) == stored


async def test_create_many_keeps_conditional_semantics(
    repository: DynamoDBExecutionRepository, unique: str
) -> None:
    tenant = f"tenant-{unique}"
    old = [execution(tenant, n) for n in range(120)]
    assert all(r.created for r in await repository.create_many(old))

    mixed = old[60:] + [execution(tenant, n) for n in range(120, 200)] + [old[0], old[0]]
    results = await repository.create_many(mixed)

    assert [r.created for r in results] == [False] * 60 + [True] * 80 + [False, False]
    page = await repository.list(ExecutionQuery(tenant, limit=100))
    assert len(page.items) == 100
    assert page.next_key is not None


async def test_create_many_reports_a_duplicate_inside_one_batch_once(
    repository: DynamoDBExecutionRepository, unique: str
) -> None:
    stored = execution(f"tenant-{unique}")
    results = await repository.create_many([stored, stored, stored])
    assert [r.created for r in results] == [True, False, False]


@pytest.mark.parametrize(("current", "requested"), list(itertools.product(list(ExecutionStatus), repeat=2)))
async def test_every_transition_is_applied_or_refused_by_the_lifecycle(
    repository: DynamoDBExecutionRepository,
    repository_settings: Settings,
    unique: str,
    current: ExecutionStatus,
    requested: ExecutionStatus,
) -> None:
    stored = execution(f"tenant-{unique}", plan_item_slug="item-sca")
    await repository.create(stored)
    await move_to(repository, stored, current)
    at = BASE_TIME + timedelta(hours=1, microseconds=5)

    result = await repository.update_status(
        ExecutionKey.of(stored), StatusChange(requested, at, has_findings=True, error="boom")
    )

    item = raw_item(repository_settings, stored)
    if is_transition_allowed(current, requested):
        assert (result.outcome, result.previous_status) == (UpdateOutcome.APPLIED, current)
        assert result.execution is not None
        assert result.execution.status == requested
        assert item["status"] == requested.value
        assert item["GSI2PK"] == f"TENANT#{stored.tenant_id}#STATUS#{requested.value}"
        assert item["GSI4PK"] == f"TENANT#{stored.tenant_id}#PLAN_ITEM#item-sca#STATUS#{requested}"
        assert (item["has_findings"], item["error"]) == (True, "boom")
        time_field = {S.DISPATCHED: "dispatched_at", S.RUNNING: "registered_at"}.get(
            requested, "completed_at"
        )
        assert item[time_field] == "2026-01-01T01:00:00.000005"
        assert item[f"{time_field}_ts"] == str(int(at.timestamp()))
        assert await repository.get(ExecutionKey.of(stored)) == result.execution
    else:
        assert (result.outcome, result.previous_status) == (UpdateOutcome.REFUSED, current)
        assert item["status"] == current.value
        assert item["GSI2PK"] == f"TENANT#{stored.tenant_id}#STATUS#{current.value}"


async def test_a_failure_without_error_removes_an_old_error(
    repository: DynamoDBExecutionRepository, repository_settings: Settings, unique: str
) -> None:
    stored = execution(f"tenant-{unique}")
    await repository.create(stored)
    key = ExecutionKey.of(stored)
    await repository.update_status(key, StatusChange(S.DISPATCHED, BASE_TIME, error="retrying"))
    result = await repository.update_status(key, StatusChange(S.FAILED, BASE_TIME), "item-code-vulnerability")

    assert result.applied
    assert "error" not in raw_item(repository_settings, stored)


async def test_updates_of_unknown_executions_change_nothing(
    repository: DynamoDBExecutionRepository, unique: str
) -> None:
    key = ExecutionKey(f"tenant-{unique}", "no-such-event", "0" * 32)
    change = StatusChange(S.DISPATCHED, BASE_TIME)

    assert (await repository.update_status(key, change)).outcome is UpdateOutcome.NOT_FOUND
    assert (await repository.update_status(key, change, "item")).outcome is UpdateOutcome.NOT_FOUND
    assert await repository.get(key) is None


async def test_a_wrong_plan_item_slug_is_refused_not_written(
    repository: DynamoDBExecutionRepository, repository_settings: Settings, unique: str
) -> None:
    stored = execution(f"tenant-{unique}")
    await repository.create(stored)
    result = await repository.update_status(
        ExecutionKey.of(stored), StatusChange(S.DISPATCHED, BASE_TIME), plan_item_slug="other"
    )
    assert result.outcome is UpdateOutcome.REFUSED
    assert raw_item(repository_settings, stored)["status"] == "pending"


async def test_concurrent_updates_apply_exactly_once(
    repository: DynamoDBExecutionRepository, unique: str
) -> None:
    stored = execution(f"tenant-{unique}")
    await repository.create(stored)
    change = StatusChange(S.DISPATCHED, BASE_TIME)
    results = await asyncio.gather(
        *(repository.update_status(ExecutionKey.of(stored), change, stored.plan_item_slug) for _ in range(16))
    )
    assert sum(r.applied for r in results) == 1


async def test_errors_become_ours(repository_settings: Settings) -> None:
    missing_table = repository_settings.model_copy(update={"dynamodb_table": "no-such-table"})
    async with open_repository(missing_table) as repository:
        with pytest.raises(RepositoryError, match="ResourceNotFoundException"):
            await repository.ping()

    dead = repository_settings.model_copy(
        update={
            "dynamodb_endpoint_url": f"http://127.0.0.1:{free_loopback_port()}",
            "dynamodb_max_attempts": 2,
        }
    )
    async with open_repository(dead) as repository:
        with pytest.raises(RepositoryUnavailableError):
            await repository.get(ExecutionKey("t", "e", "x"))


async def test_a_page_key_is_refused_by_another_tenant_or_filter(
    repository: DynamoDBExecutionRepository, unique: str
) -> None:
    tenant = f"tenant-{unique}"
    await repository.create_many([execution(tenant, n) for n in range(3)])
    page = await repository.list(ExecutionQuery(tenant, limit=1))
    assert page.next_key is not None

    with pytest.raises(InvalidPageKeyError):
        await repository.list(ExecutionQuery(f"other-{unique}", limit=1, start_after=page.next_key))
    with pytest.raises(InvalidPageKeyError):
        await repository.list(ExecutionQuery(tenant, status=S.PENDING, start_after=page.next_key))


async def test_a_waiting_execution_gets_its_assets_fields_once_and_only_while_pending(
    repository: DynamoDBExecutionRepository, repository_settings: Settings
) -> None:
    event = trigger_event("tenant-waits", "event-w", "asset-late", job_runner="jit_runner")
    waiting = build_waiting_execution(event, BASE_TIME)
    await repository.create(waiting)
    key = ExecutionKey.of(waiting)
    assert raw_item(repository_settings, waiting)["waiting_for_asset"] == "asset-late"

    late = asset("tenant-waits", "asset-late")
    completed = await repository.complete_waiting(key, late)
    renamed = asset("tenant-waits", "asset-late").model_copy(update={"asset_name": "renamed"})
    again = await repository.complete_waiting(key, renamed)

    assert completed is not None
    assert (completed.asset_name, completed.waiting_for_asset) == (late.asset_name, None)
    # Where the asset says its jobs go, beside the trigger's own attributes.
    assert completed.additional_attributes == {
        **waiting.additional_attributes,
        "installation_id": "24915845",
        "app_id": "161076",
        "owner": "jitsecurity",
        "original_repository": "execution-service",
    }
    assert again == completed  # a replay changes nothing and reports what is stored
    assert "waiting_for_asset" not in raw_item(repository_settings, waiting)
    unknown = ExecutionKey("tenant-waits", "event-w", "0" * 32)
    assert await repository.complete_waiting(unknown, late) is None


async def test_the_dispatched_mark_stores_the_deadline(
    repository: DynamoDBExecutionRepository, repository_settings: Settings
) -> None:
    stored = execution(tenant_id="tenant-deadline")
    await repository.create(stored)
    deadline = BASE_TIME + timedelta(hours=1)
    change = StatusChange(S.DISPATCHED, BASE_TIME, deadline_at=deadline)

    result = await repository.update_status(ExecutionKey.of(stored), change, stored.plan_item_slug)

    assert result.execution is not None
    assert result.execution.deadline_at == format_timestamp(deadline)
    assert raw_item(repository_settings, stored)["deadline_at"] == format_timestamp(deadline)


async def test_reports_that_overtake_the_mark_are_held_once_in_order_and_found_by_the_mark(
    repository: DynamoDBExecutionRepository, repository_settings: Settings, unique: str
) -> None:
    stored = execution(f"tenant-{unique}")
    await repository.create(stored)
    key = ExecutionKey.of(stored)
    running = StatusChange(S.RUNNING, BASE_TIME + timedelta(seconds=1))
    completed = StatusChange(S.COMPLETED, BASE_TIME + timedelta(seconds=2), has_findings=True)

    outcomes = [(await repository.hold_report(key, c)).outcome for c in (running, completed, completed)]
    mark = StatusChange(S.DISPATCHED, BASE_TIME, deadline_at=BASE_TIME + timedelta(hours=1))
    marked = await repository.update_status(key, mark, stored.plan_item_slug)
    lost_answer = await repository.update_status(key, mark, stored.plan_item_slug)
    late = await repository.hold_report(key, StatusChange(S.FAILED, BASE_TIME + timedelta(seconds=3)))

    # The same report held twice (a replayed record) is held once, and said to be held.
    assert outcomes == [UpdateOutcome.HELD] * 3
    assert (marked.outcome, marked.held_reports) == (UpdateOutcome.APPLIED, (running, completed))
    assert (lost_answer.outcome, lost_answer.held_reports) == (UpdateOutcome.REFUSED, (running, completed))
    assert (late.outcome, late.previous_status) == (UpdateOutcome.REFUSED, S.DISPATCHED)
    # Kept after the mark (a replay of the dispatch sends them again); never part of the execution.
    assert await repository.held_reports(key) == (running, completed)
    assert len(raw_item(repository_settings, stored)["held_reports"]) == 2  # type: ignore[arg-type]
    assert await repository.get(key) == marked.execution


async def test_a_report_is_not_held_for_an_unknown_a_waiting_or_a_crowded_execution(
    repository: DynamoDBExecutionRepository, unique: str
) -> None:
    tenant = f"tenant-{unique}"
    waiting = build_waiting_execution(trigger_event(tenant, "event-w", "asset-late"), BASE_TIME)
    crowded = execution(tenant, 1)
    await repository.create_many([waiting, crowded])
    reports = [StatusChange(S.RUNNING, BASE_TIME + timedelta(seconds=n)) for n in range(9)]

    unknown = await repository.hold_report(ExecutionKey(tenant, "event-x", "0" * 32), reports[0])
    not_arrived = await repository.hold_report(ExecutionKey.of(waiting), reports[0])
    crowding = [await repository.hold_report(ExecutionKey.of(crowded), r) for r in reports]

    assert unknown.outcome is UpdateOutcome.NOT_FOUND
    assert (not_arrived.outcome, not_arrived.held_reports) == (UpdateOutcome.REFUSED, ())
    assert [r.outcome for r in crowding] == [UpdateOutcome.HELD] * 8 + [UpdateOutcome.REFUSED]
    assert await repository.held_reports(ExecutionKey.of(crowded)) == tuple(reports[:8])
