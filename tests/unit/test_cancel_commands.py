"""Cancelling through execution-commands: pending, dispatched (GitHub and topic-fed), final, twice,
unknown, and a cancel that comes while the job is being handed over."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from execution_stream.domain.commands import CancelCommand
from execution_stream.domain.models import CancelReason, Execution
from execution_stream.domain.store import ExecutionKey, StatusChange
from execution_stream.pipeline.commands import CommandStep
from execution_stream.pipeline.messages import Destination, Effects, ExecutionRef, SourceRecord, encode
from execution_stream.pipeline.runner_cancels import RunnerCancels
from tests.support.factories import BASE_TIME
from tests.support.fake_store import FakeStore
from tests.support.pipeline_steps import (
    RecordingGithub,
    RecordingRunnerJobs,
    S,
    clock,
    dispatch_step,
    reasons,
    sent,
    stored_pending,
)

GRACE_SECONDS = 30.0


def command_step(repository: FakeStore, github: RecordingGithub) -> CommandStep:
    return CommandStep(repository, RunnerCancels(github), GRACE_SECONDS, clock)


def cancel_record(execution: Execution, offset: int = 0, **fields: Any) -> SourceRecord:
    command = CancelCommand(
        tenant_id=execution.tenant_id,
        execution_id=execution.execution_id,
        jit_event_id=execution.jit_event_id,
        **fields,
    )
    return SourceRecord("execution-commands", 0, offset, execution.tenant_id.encode(), encode(command))


async def dispatched(repository: FakeStore, github: RecordingGithub, runner: str) -> Execution:
    pending = await stored_pending(repository, runner)
    step = dispatch_step(repository, github, RecordingRunnerJobs())
    reference = ExecutionRef.of(pending)
    await step.handle([SourceRecord("enrich-and-dispatch", 0, 0, b"tenant-a", encode(reference))])
    stored = await repository.get(ExecutionKey.of(pending))
    assert stored is not None
    assert stored.status is S.DISPATCHED
    return stored


def stored(repository: FakeStore, execution: Execution) -> Execution:
    found = repository.items[ExecutionKey.of(execution)]
    return found


async def test_a_pending_execution_is_canceled_at_once_and_gives_its_place_back() -> None:
    repository, github = FakeStore(), RecordingGithub()
    pending = await stored_pending(repository, "jit_runner")

    effects = await command_step(repository, github).handle([cancel_record(pending)])

    canceled = stored(repository, pending)
    assert (canceled.status, canceled.cancel_reason) == (S.CANCELED, CancelReason.REQUESTED)
    [event] = sent(effects, Destination.EVENTS)
    assert (event["status"], event["previous_status"], event["cancel_reason"]) == (
        "canceled",
        "pending",
        "requested",
    )
    assert sent(effects, Destination.ALLOCATE) == [
        {
            "type": "release",
            "tenant_id": "tenant-a",
            "execution_id": pending.execution_id,
            "job_runner": "jit_runner",
        }
    ]
    assert github.cancels == []


async def test_a_dispatched_github_job_is_canceled_at_github_by_its_run_id() -> None:
    repository, github = FakeStore(), RecordingGithub()
    execution = await dispatched(repository, github, "github_actions")
    assert execution.workflow_run_id == 1
    assert execution.html_url is not None

    effects = await command_step(repository, github).handle([cancel_record(execution)])

    [run] = github.cancels
    assert (run.workflow_run_id, run.owner, run.installation_id) == (1, "jitsecurity", "24915845")
    assert stored(repository, execution).cancel_requested_at is not None
    # GitHub accepted: the cancel is confirmed through the status topic, which releases the slot.
    [update] = sent(effects, Destination.STATUS)
    assert (update["status"], update["execution_id"]) == ("canceled", execution.execution_id)
    assert sent(effects, Destination.ALLOCATE) == []


async def test_a_dispatched_topic_fed_job_gets_a_cancel_record_and_a_grace_period() -> None:
    repository, github = FakeStore(), RecordingGithub()
    execution = await dispatched(repository, github, "jit_runner")

    effects = await command_step(repository, github).handle([cancel_record(execution)])

    [record] = sent(effects, Destination.RUNNER_JOBS)
    assert (record["type"], record["execution_id"], record["attempt"]) == (
        "cancel",
        execution.execution_id,
        1,
    )
    [grace] = sent(effects, Destination.ALLOCATE)
    assert grace["type"] == "cancel_requested"
    assert grace["confirm_by"] == (BASE_TIME + timedelta(seconds=GRACE_SECONDS)).isoformat().replace(
        "+00:00", "Z"
    )
    assert sent(effects, Destination.STATUS) == []
    assert stored(repository, execution).status is S.DISPATCHED


async def test_cancelling_twice_is_one_cancellation() -> None:
    repository, github = FakeStore(), RecordingGithub()
    execution = await dispatched(repository, github, "jit_runner")
    step = command_step(repository, github)

    first = await step.handle([cancel_record(execution, 0)])
    second = await step.handle([cancel_record(execution, 1), cancel_record(execution, 2)])

    assert len(sent(first, Destination.RUNNER_JOBS)) == 1
    assert sent(second, Destination.RUNNER_JOBS) == []
    # The grace period is said again (a crash may have lost the first), with the same deadline.
    graces = sent(first, Destination.ALLOCATE) + sent(second, Destination.ALLOCATE)
    assert len({grace["confirm_by"] for grace in graces}) == 1


async def test_a_final_execution_is_left_as_it_is() -> None:
    repository, github = FakeStore(), RecordingGithub()
    execution = await dispatched(repository, github, "github_actions")
    await repository.update_status(ExecutionKey.of(execution), StatusChange(S.COMPLETED, BASE_TIME))

    effects = await command_step(repository, github).handle([cancel_record(execution)])

    assert effects == Effects()
    assert stored(repository, execution).status is S.COMPLETED
    assert github.cancels == []


async def test_an_unknown_execution_or_a_record_keyed_by_another_tenant_is_dead_lettered() -> None:
    repository, github = FakeStore(), RecordingGithub()
    pending = await stored_pending(repository, "jit_runner")
    unknown = pending.model_copy(update={"execution_id": "0" * 32})
    wrong_key = SourceRecord("execution-commands", 0, 5, b"tenant-b", cancel_record(pending).value)

    effects = await command_step(repository, github).handle([cancel_record(unknown), wrong_key])

    assert sorted(reasons(effects)) == ["execution_not_found", "invalid"]
    assert stored(repository, pending).status is S.PENDING


async def test_a_command_without_its_jit_event_id_finds_the_execution() -> None:
    repository, github = FakeStore(), RecordingGithub()
    pending = await stored_pending(repository, "jit_runner")
    command = CancelCommand(tenant_id="tenant-a", execution_id=pending.execution_id)
    record = SourceRecord("execution-commands", 0, 0, b"tenant-a", encode(command))

    await command_step(repository, github).handle([record])

    assert stored(repository, pending).status is S.CANCELED
    assert repository.finds == [("tenant-a", pending.execution_id)]


async def test_a_superseded_execution_names_the_one_that_replaced_it() -> None:
    repository, github = FakeStore(), RecordingGithub()
    pending = await stored_pending(repository, "jit_runner")
    record = cancel_record(pending, reason=CancelReason.SUPERSEDED, superseded_by="f" * 32)

    effects = await command_step(repository, github).handle([record])

    canceled = stored(repository, pending)
    assert (canceled.cancel_reason, canceled.superseded_by) == (CancelReason.SUPERSEDED, "f" * 32)
    [event] = sent(effects, Destination.EVENTS)
    assert (event["cancel_reason"], event["superseded_by"]) == ("superseded", "f" * 32)


async def test_a_job_canceled_while_it_was_handed_over_is_stopped_at_its_runner() -> None:
    repository, github = FakeStore(), RecordingGithub()
    pending = await stored_pending(repository, "github_actions")
    handing_over = dispatch_step(repository, github, RecordingRunnerJobs())
    original_send = handing_over._send_to_runner

    async def canceled_meanwhile(execution: Execution, at: Any) -> Any:
        run = await original_send(execution, at)
        await command_step(repository, github).handle([cancel_record(pending)])
        return run

    handing_over._send_to_runner = canceled_meanwhile  # type: ignore[method-assign,assignment]
    reference = ExecutionRef.of(pending)
    await handing_over.handle([SourceRecord("enrich-and-dispatch", 0, 0, b"tenant-a", encode(reference))])

    assert stored(repository, pending).status is S.CANCELED
    assert [run.workflow_run_id for run in github.cancels] == [1]
