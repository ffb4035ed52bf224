"""The lifecycle's conditional writes against each DynamoDB server: the run at dispatch, a cancel
asked once, a pending one canceled only while pending, the next attempt over the same attempt only,
and the attempts list written once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest

from execution_stream.adapters.dynamodb_repository import DynamoDBExecutionRepository, open_repository
from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.domain.models import CancelReason, Execution, ExecutionStatus
from execution_stream.domain.retries import retried, with_final_attempt
from execution_stream.domain.store import ExecutionKey, StatusChange, UpdateOutcome
from execution_stream.settings import Settings
from tests.support.factories import BASE_TIME, execution

pytestmark = pytest.mark.dynamodb_engines

S = ExecutionStatus


@pytest.fixture(scope="session")
def lifecycle_settings(stack_settings: Settings) -> Settings:
    settings = stack_settings.model_copy(
        update={"dynamodb_table": f"Executions-lifecycle-{uuid.uuid4().hex[:8]}"}
    )
    create_table(settings)
    return settings


@pytest.fixture
async def repository(lifecycle_settings: Settings) -> AsyncIterator[DynamoDBExecutionRepository]:
    async with open_repository(lifecycle_settings) as opened:
        yield opened


async def dispatched(repository: DynamoDBExecutionRepository, number: int) -> Execution:
    pending = execution(f"tenant-{uuid.uuid4().hex[:8]}", number)
    await repository.create(pending)
    change = StatusChange(
        S.DISPATCHED,
        BASE_TIME + timedelta(seconds=1),
        deadline_at=BASE_TIME + timedelta(hours=1),
        workflow_run_id=10_000_000_001,
        html_url="https://github.com/jitsecurity/repo/actions/runs/10000000001",
    )
    result = await repository.update_status(ExecutionKey.of(pending), change, pending.plan_item_slug)
    assert result.applied
    stored = await repository.get(ExecutionKey.of(pending))
    assert stored is not None
    return stored


async def test_the_dispatch_stores_the_run_and_a_report_its_own_reference(
    repository: DynamoDBExecutionRepository,
) -> None:
    stored = await dispatched(repository, 1)
    assert (stored.workflow_run_id, stored.html_url) == (
        10_000_000_001,
        "https://github.com/jitsecurity/repo/actions/runs/10000000001",
    )
    report = StatusChange(S.RUNNING, BASE_TIME + timedelta(seconds=2), run_ref="pod-7")
    result = await repository.update_status(ExecutionKey.of(stored), report, stored.plan_item_slug)
    running = await repository.get(ExecutionKey.of(stored))
    assert result.execution == running
    assert running is not None
    assert (running.run_ref, running.workflow_run_id) == ("pod-7", 10_000_000_001)


async def test_a_cancel_is_asked_once_of_a_job_under_way(repository: DynamoDBExecutionRepository) -> None:
    stored = await dispatched(repository, 2)
    change = StatusChange(S.CANCELED, BASE_TIME + timedelta(seconds=3), cancel_reason=CancelReason.REQUESTED)

    first = await repository.request_cancel(ExecutionKey.of(stored), change)
    second = await repository.request_cancel(
        ExecutionKey.of(stored), replace(change, at=BASE_TIME + timedelta(9))
    )

    assert first.outcome is UpdateOutcome.APPLIED
    assert first.execution is not None
    assert (first.execution.cancel_requested_at, first.execution.cancel_reason) == (
        "2026-01-01T00:00:03.000000",
        CancelReason.REQUESTED,
    )
    assert second.outcome is UpdateOutcome.REFUSED
    assert second.execution == first.execution


async def test_a_pending_only_cancel_leaves_a_dispatched_execution_alone(
    repository: DynamoDBExecutionRepository,
) -> None:
    stored = await dispatched(repository, 3)
    change = StatusChange(
        S.CANCELED,
        BASE_TIME + timedelta(seconds=4),
        cancel_reason=CancelReason.SUPERSEDED,
        superseded_by="f" * 32,
        only_from=S.PENDING,
    )

    refused = await repository.update_status(ExecutionKey.of(stored), change, stored.plan_item_slug)
    assert (refused.outcome, refused.previous_status) == (UpdateOutcome.REFUSED, S.DISPATCHED)

    pending = execution(stored.tenant_id, 30)
    await repository.create(pending)
    canceled = await repository.update_status(ExecutionKey.of(pending), change, pending.plan_item_slug)
    assert canceled.applied
    assert canceled.execution == await repository.get(ExecutionKey.of(pending))
    assert canceled.execution is not None
    assert (canceled.execution.cancel_reason, canceled.execution.superseded_by) == (
        CancelReason.SUPERSEDED,
        "f" * 32,
    )


async def test_the_next_attempt_replaces_only_the_attempt_it_was_read_as(
    repository: DynamoDBExecutionRepository,
) -> None:
    stored = await dispatched(repository, 4)
    failure = StatusChange(S.FAILED, BASE_TIME + timedelta(seconds=5), error="runner died", retryable=True)
    after = retried(stored, failure)

    first = await repository.replace_attempt(stored, after)
    again = await repository.replace_attempt(stored, retried(stored, replace(failure, error="again")))

    assert first.outcome is UpdateOutcome.APPLIED
    assert again.outcome is UpdateOutcome.REFUSED
    assert again.execution == after == await repository.get(ExecutionKey.of(stored))
    assert (after.status, after.attempt, after.dispatched_at) == (S.PENDING, 2, None)


async def test_the_final_attempt_is_added_once(repository: DynamoDBExecutionRepository) -> None:
    stored = await dispatched(repository, 5)
    failure = StatusChange(S.FAILED, BASE_TIME + timedelta(seconds=5), error="runner died", retryable=True)
    await repository.replace_attempt(stored, retried(stored, failure))
    key = ExecutionKey.of(stored)
    for status, seconds in ((S.DISPATCHED, 6), (S.COMPLETED, 9)):
        change = StatusChange(status, BASE_TIME + timedelta(seconds=seconds))
        assert (await repository.update_status(key, change, stored.plan_item_slug)).applied
    ended = await repository.get(key)
    assert ended is not None
    attempts = with_final_attempt(ended)
    assert attempts is not None

    await repository.record_attempts(ended, attempts)
    await repository.record_attempts(ended, attempts)  # a replay: the list grew since it was read

    final = await repository.get(key)
    assert final is not None
    assert [(a.number, a.status) for a in final.attempts or []] == [(1, S.FAILED), (2, S.COMPLETED)]
    assert final.attempt == 2


async def test_a_report_naming_its_attempt_applies_to_that_attempt_only(
    repository: DynamoDBExecutionRepository,
) -> None:
    stored = await dispatched(repository, 6)
    key, slug = ExecutionKey.of(stored), stored.plan_item_slug
    running = StatusChange(S.RUNNING, BASE_TIME + timedelta(seconds=2))

    stale = await repository.update_status(key, replace(running, attempt=2), slug)  # it is at its first
    first = await repository.update_status(key, replace(running, attempt=1), slug)  # no attribute yet

    assert (stale.outcome, first.outcome) == (UpdateOutcome.REFUSED, UpdateOutcome.APPLIED)
    failure = StatusChange(S.FAILED, BASE_TIME + timedelta(seconds=3), retryable=True)
    assert first.execution is not None
    await repository.replace_attempt(first.execution, retried(first.execution, failure))
    mark = StatusChange(S.DISPATCHED, BASE_TIME + timedelta(seconds=4))
    assert (await repository.update_status(key, mark, slug)).applied
    late = await repository.update_status(key, replace(running, attempt=1), slug)
    current = await repository.update_status(key, replace(running, attempt=2), slug)
    assert (late.outcome, current.outcome) == (UpdateOutcome.REFUSED, UpdateOutcome.APPLIED)
