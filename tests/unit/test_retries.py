"""Retrying a retryable failure: the next attempt pending again, every attempt kept, the last one's
failure final, replays and stale reports refused."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from execution_stream.domain.models import Execution, ExecutionStatusUpdate
from execution_stream.domain.retries import RetryPolicy, retried, with_final_attempt
from execution_stream.domain.store import ExecutionKey, StatusChange
from execution_stream.pipeline.messages import Destination, ExecutionRef, SourceRecord, encode
from execution_stream.pipeline.status_updates import StatusUpdateStep
from tests.support.factories import BASE_TIME
from tests.support.fake_store import FakeStore
from tests.support.pipeline_steps import (
    RecordingGithub,
    RecordingRunnerJobs,
    S,
    clock,
    dispatch_step,
    sent,
    stored_pending,
)

POLICY = RetryPolicy(max_attempts=2, first_seconds=10.0, max_seconds=60.0)


def report(execution: Execution, status: S, at: datetime, **fields: Any) -> SourceRecord:
    update = ExecutionStatusUpdate(
        tenant_id=execution.tenant_id,
        jit_event_id=execution.jit_event_id,
        execution_id=execution.execution_id,
        status=status,
        at=at,
        **fields,
    )
    return SourceRecord("execution-status", 0, 0, execution.tenant_id.encode(), encode(update))


async def dispatch(repository: FakeStore, execution: Execution) -> Execution:
    step = dispatch_step(repository, RecordingGithub(), RecordingRunnerJobs())
    await step.handle([SourceRecord("enrich", 0, 0, b"tenant-a", encode(ExecutionRef.of(execution)))])
    return repository.items[ExecutionKey.of(execution)]


def step(repository: FakeStore, policy: RetryPolicy = POLICY) -> StatusUpdateStep:
    return StatusUpdateStep(repository, retry_policy=policy, now=clock)


async def test_a_retryable_failure_is_dispatched_again_with_the_first_attempt_kept() -> None:
    repository = FakeStore()
    execution = await dispatch(repository, await stored_pending(repository, "jit_runner"))
    failed_at = BASE_TIME + timedelta(seconds=5)

    effects = await step(repository).handle(
        [report(execution, S.FAILED, failed_at, retryable=True, error="runner died", run_ref="pod-1")]
    )

    again = repository.items[ExecutionKey.of(execution)]
    assert (again.status, again.attempt, again.execution_id) == (S.PENDING, 2, execution.execution_id)
    assert again.dispatched_at is None
    assert again.error == "runner died"
    [first] = again.attempts or []
    assert (first.number, first.status, first.error, first.run_ref, first.retryable) == (
        1,
        S.FAILED,
        "runner died",
        "pod-1",
        True,
    )
    assert first.dispatched_at == execution.dispatched_at
    [event] = sent(effects, Destination.EVENTS)
    assert (event["status"], event["previous_status"], event["attempt"]) == ("pending", "dispatched", 2)
    [redispatch] = sent(effects, Destination.ALLOCATE)
    assert redispatch["type"] == "redispatch"
    assert redispatch["retry_at"] == "2026-01-01T00:00:10Z"


async def test_the_next_attempt_runs_to_success_and_both_attempts_are_on_the_item() -> None:
    repository = FakeStore()
    execution = await dispatch(repository, await stored_pending(repository, "jit_runner"))
    status = step(repository)
    await status.handle(
        [report(execution, S.FAILED, BASE_TIME, retryable=True, error="timeout before start")]
    )
    second = await dispatch(repository, repository.items[ExecutionKey.of(execution)])
    assert (second.status, second.attempt) == (S.DISPATCHED, 2)

    done_at = BASE_TIME + timedelta(minutes=3)
    effects = await status.handle([report(second, S.COMPLETED, done_at, attempt=2)])

    final = repository.items[ExecutionKey.of(execution)]
    assert final.status is S.COMPLETED
    assert [(a.number, a.status) for a in final.attempts or []] == [(1, S.FAILED), (2, S.COMPLETED)]
    [event] = sent(effects, Destination.EVENTS)
    assert (event["status"], event["attempt"]) == ("completed", 2)


async def test_the_last_attempt_fails_for_good_and_says_so() -> None:
    repository = FakeStore()
    execution = await dispatch(repository, await stored_pending(repository, "jit_runner"))
    status = step(repository)
    await status.handle([report(execution, S.FAILED, BASE_TIME, retryable=True, error="oom")])
    second = await dispatch(repository, repository.items[ExecutionKey.of(execution)])

    await status.handle([report(second, S.FAILED, BASE_TIME + timedelta(1), retryable=True, error="oom")])

    final = repository.items[ExecutionKey.of(execution)]
    assert (final.status, final.error) == (S.FAILED, "attempt 2 of 2 failed: oom")
    assert [a.number for a in final.attempts or []] == [1, 2]


async def test_a_replayed_failure_or_a_report_of_an_earlier_attempt_changes_nothing() -> None:
    repository = FakeStore()
    execution = await dispatch(repository, await stored_pending(repository, "jit_runner"))
    status = step(repository)
    failure = report(execution, S.FAILED, BASE_TIME, retryable=True)
    await status.handle([failure])
    second = await dispatch(repository, repository.items[ExecutionKey.of(execution)])

    replayed = await status.handle([failure])
    stale = await status.handle([report(second, S.COMPLETED, BASE_TIME, attempt=1)])

    now = repository.items[ExecutionKey.of(execution)]
    assert (now.status, now.attempt, len(now.attempts or [])) == (S.DISPATCHED, 2, 1)
    assert sent(replayed, Destination.EVENTS) == sent(stale, Destination.EVENTS) == []


async def test_a_failure_not_marked_retryable_or_without_retries_left_is_final() -> None:
    repository = FakeStore()
    execution = await dispatch(repository, await stored_pending(repository, "jit_runner"))

    await step(repository, RetryPolicy(1, 1.0, 1.0)).handle(
        [report(execution, S.FAILED, BASE_TIME, retryable=True, error="died")]
    )

    final = repository.items[ExecutionKey.of(execution)]
    assert (final.status, final.error, final.attempts) == (S.FAILED, "attempt 1 of 1 failed: died", None)


def test_only_a_failure_of_a_job_under_way_is_retried() -> None:
    pending = Execution.model_validate(
        {**_dispatched_fields(), "status": "pending", "dispatched_at": None, "dispatched_at_ts": None}
    )
    failure = StatusChange(S.FAILED, BASE_TIME, retryable=True)
    assert not POLICY.retries(pending, failure)
    with pytest.raises(ValueError, match="only a failure"):
        retried(pending, failure)
    canceling = Execution.model_validate(
        {**_dispatched_fields(), "cancel_requested_at": "2026-01-01T00:00:00"}
    )
    assert not POLICY.retries(canceling, failure)
    assert POLICY.retries(Execution.model_validate(_dispatched_fields()), failure)


def test_an_execution_that_ran_once_lists_no_attempts() -> None:
    completed = Execution.model_validate(
        {**_dispatched_fields(), "status": "completed", "completed_at": "2026-01-01T00:01:00.000000"}
    )
    assert with_final_attempt(completed) is None


def test_the_backoff_doubles_up_to_its_ceiling() -> None:
    assert [POLICY.delay_seconds(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, 60.0]


def _dispatched_fields() -> dict[str, Any]:
    return {
        "tenant_id": "tenant-a",
        "jit_event_id": "event-1",
        "execution_id": "a" * 32,
        "jit_event_name": "push",
        "asset_id": "asset-1",
        "asset_name": "repo",
        "asset_type": "repo",
        "vendor": "github",
        "plan_slug": "plan",
        "plan_item_slug": "item",
        "workflow_slug": "workflow",
        "job_name": "job",
        "job_runner": "jit_runner",
        "steps": [{"name": "step", "uses": "image"}],
        "additional_attributes": {},
        "control_name": "step",
        "control_image": "image",
        "status": "dispatched",
        "created_at": "2026-01-01T00:00:00.000000",
        "created_at_ts": 1767225600,
        "dispatched_at": "2026-01-01T00:00:01.000000",
        "dispatched_at_ts": 1767225601,
    }


async def test_a_retryable_failure_that_overtook_its_dispatch_mark_is_held_then_retried() -> None:
    repository = FakeStore()
    pending = await stored_pending(repository, "jit_runner")
    status = step(repository)
    held = await status.handle([report(pending, S.FAILED, BASE_TIME, retryable=True, error="no node")])
    assert sent(held, Destination.EVENTS) == []

    marking = dispatch_step(repository, RecordingGithub(), RecordingRunnerJobs())
    marked = await marking.handle(
        [SourceRecord("enrich", 0, 0, b"tenant-a", encode(ExecutionRef.of(pending)))]
    )
    [again] = sent(marked, Destination.STATUS)
    assert (again["retryable"], again["error"]) == (True, "no node")
    resent = SourceRecord("execution-status", 0, 1, b"tenant-a", json.dumps(again).encode())
    await status.handle([resent])

    now = repository.items[ExecutionKey.of(pending)]
    assert (now.status, now.attempt, now.error) == (S.PENDING, 2, "no node")


async def test_a_retryable_failure_of_one_asked_to_cancel_ends_it_canceled() -> None:
    repository = FakeStore()
    execution = await dispatch(repository, await stored_pending(repository, "jit_runner"))
    key = ExecutionKey.of(execution)
    await repository.request_cancel(key, StatusChange(S.CANCELED, BASE_TIME))

    effects = await step(repository).handle(
        [report(execution, S.FAILED, BASE_TIME, retryable=True, error="oom")]
    )

    ended = repository.items[key]
    assert (ended.status, ended.error, ended.attempt, ended.attempts) == (S.CANCELED, "oom", 1, None)
    [event] = sent(effects, Destination.EVENTS)
    assert event["status"] == "canceled"
    assert [release["type"] for release in sent(effects, Destination.ALLOCATE)] == ["release"]


class CountingReads(FakeStore):
    reads = 0

    async def get_many(self, keys: Any) -> Any:
        self.reads += 1
        return await super().get_many(keys)


async def test_a_report_naming_its_attempt_costs_no_read_and_a_stale_one_is_not_held() -> None:
    repository = CountingReads()
    execution = await dispatch(repository, await stored_pending(repository, "jit_runner"))
    status = step(repository)
    await status.handle([report(execution, S.FAILED, BASE_TIME, retryable=True, error="no node")])
    reads = repository.reads

    running = await status.handle([report(execution, S.RUNNING, BASE_TIME, attempt=1)])  # now pending, at 2

    assert repository.reads == reads
    assert sent(running, Destination.EVENTS) == []
    key = ExecutionKey.of(execution)
    assert repository.held.get(key, []) == []
    assert (repository.items[key].status, repository.items[key].attempt) == (S.PENDING, 2)
