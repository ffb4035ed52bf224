"""A runner's report that overtakes the job's `dispatched` mark is held on the item, not lost; the
service's own statuses are not a runner's to report."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from execution_stream.domain.enrichment import DispatchedJob
from execution_stream.domain.models import Execution
from execution_stream.domain.store import ExecutionKey, StatusChange, StatusUpdateResult, UpdateOutcome
from execution_stream.domain.trace import TraceContext
from execution_stream.pipeline.messages import Destination, Effects, Outgoing, SourceRecord
from execution_stream.pipeline.status_updates import StatusUpdateStep
from tests.support.factories import BASE_TIME
from tests.support.fake_store import FakeStore
from tests.support.pipeline_steps import (
    RecordingGithub,
    RecordingRunnerJobs,
    S,
    dispatch_step,
    reasons,
    sent,
    source,
    stored_pending,
)

STATUS_TOPIC = "execution-status"


def report(execution: Execution, status: str, minute: int, **fields: Any) -> SourceRecord:
    update = {
        "tenant_id": execution.tenant_id,
        "jit_event_id": execution.jit_event_id,
        "execution_id": execution.execution_id,
        "status": status,
        "at": (BASE_TIME + timedelta(minutes=minute)).isoformat(),
        **fields,
    }
    return source(minute, json.dumps(update).encode(), STATUS_TOPIC)


def as_records(outgoing: list[Outgoing]) -> list[SourceRecord]:
    """What the dispatch step sent to the status topic, as the status step reads it."""
    return [source(n, o.value, STATUS_TOPIC) for n, o in enumerate(outgoing)]


def to_status(effects: Effects) -> list[Outgoing]:
    return [o for o in effects.outgoing if o.destination is Destination.STATUS]


class FastRunner(RecordingRunnerJobs):
    """Reports running and completed the instant it receives its job: before the mark is stored."""

    def __init__(self, statuses: StatusUpdateStep, execution: Execution) -> None:
        super().__init__()
        self.statuses, self.execution = statuses, execution
        self.answers: list[Effects] = []

    async def publish(self, job: DispatchedJob, trace: TraceContext) -> None:
        await super().publish(job, trace)
        reports = [
            report(self.execution, "running", 1),
            report(self.execution, "completed", 2, has_findings=True),
        ]
        self.answers.append(await self.statuses.handle(reports))


async def test_reports_that_overtake_the_mark_are_held_and_applied_after_it() -> None:
    repository = FakeStore()
    execution = await stored_pending(repository, "jit_runner")
    outcomes: list[UpdateOutcome] = []
    statuses = StatusUpdateStep(repository, outcomes.append)
    runner = FastRunner(statuses, execution)
    record = source(1, execution.model_dump_json().encode(), "enrich-and-dispatch")

    dispatched = await dispatch_step(repository, RecordingGithub(), runner).handle([record])

    # Held, not applied: no event, no release, counted as held.
    [answer] = runner.answers
    assert answer.outgoing == []
    assert outcomes == [UpdateOutcome.HELD, UpdateOutcome.HELD]
    # The mark sends them to the status topic again, in their order, after its own event.
    assert [(o.destination, json.loads(o.value)["status"]) for o in dispatched.outgoing[:3]] == [
        (Destination.EVENTS, "dispatched"),
        (Destination.STATUS, "running"),
        (Destination.STATUS, "completed"),
    ]
    applied = await statuses.handle(as_records(to_status(dispatched)))

    assert [(e["status"], e["previous_status"]) for e in sent(applied, Destination.EVENTS)] == [
        ("running", "dispatched"),
        ("completed", "running"),
    ]
    assert [r["type"] for r in sent(applied, Destination.ALLOCATE)] == ["release"]
    done = repository.items[ExecutionKey.of(execution)]
    assert (done.status, done.has_findings) == (S.COMPLETED, True)


async def test_a_replayed_mark_sends_the_held_reports_again() -> None:
    repository = FakeStore()
    execution = await stored_pending(repository, "jit_runner")
    statuses = StatusUpdateStep(repository)
    runner = FastRunner(statuses, execution)
    record = source(1, execution.model_dump_json().encode(), "enrich-and-dispatch")
    step = dispatch_step(repository, RecordingGithub(), runner)
    first = await step.handle([record])

    # A crash before the held reports were sent: the replay finds the job marked and sends them.
    replayed = await step.handle([record])
    assert [json.loads(o.value) for o in to_status(replayed)] == [
        json.loads(o.value) for o in to_status(first)
    ]
    # A crash after only the first was applied: the job runs, and both go again; the one applied
    # already is taken as applied (at-least-once), so the last report still lands.
    [running, _] = as_records(to_status(first))
    await statuses.handle([running])
    again = await step.handle([record])
    applied = await statuses.handle(as_records(to_status(again)))

    assert [e["status"] for e in sent(applied, Destination.EVENTS)] == ["running", "completed"]
    assert repository.items[ExecutionKey.of(execution)].status is S.COMPLETED
    assert len(runner.jobs) == 1


class MarkedMeanwhile(FakeStore):
    """The dispatch mark is stored between the status step's refusal and its hold."""

    async def hold_report(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        await self.update_status(key, StatusChange(S.DISPATCHED, BASE_TIME))
        return await super().hold_report(key, change)


async def test_a_report_whose_mark_comes_before_its_hold_is_applied_at_once() -> None:
    repository = MarkedMeanwhile()
    execution = await stored_pending(repository, "jit_runner")

    effects = await StatusUpdateStep(repository).handle([report(execution, "running", 1)])

    assert [(e["status"], e["previous_status"]) for e in sent(effects, Destination.EVENTS)] == [
        ("running", "dispatched")
    ]
    assert repository.held == {ExecutionKey.of(execution): []}


async def test_a_report_for_an_execution_waiting_for_its_asset_is_refused_not_held() -> None:
    repository = FakeStore()
    execution = await stored_pending(repository, "jit_runner")
    key = ExecutionKey.of(execution)
    repository.items[key] = execution.model_copy(update={"waiting_for_asset": execution.asset_id})
    outcomes: list[UpdateOutcome] = []

    effects = await StatusUpdateStep(repository, outcomes.append).handle([report(execution, "completed", 1)])

    assert outcomes == [UpdateOutcome.REFUSED]
    assert effects.outgoing == []
    assert repository.held.get(key, []) == []


async def test_a_runner_reporting_pending_or_dispatched_is_dead_lettered_and_changes_nothing() -> None:
    repository = FakeStore()
    execution = await stored_pending(repository, "jit_runner")
    outcomes: list[UpdateOutcome] = []

    effects = await StatusUpdateStep(repository, outcomes.append).handle(
        [report(execution, "dispatched", 1), report(execution, "pending", 2)]
    )

    assert reasons(effects) == ["status_not_reportable", "status_not_reportable"]
    assert [o.destination for o in effects.outgoing] == [Destination.DLQ, Destination.DLQ]
    assert outcomes == []
    stored = repository.items[ExecutionKey.of(execution)]
    assert (stored.status, stored.deadline_at) == (S.PENDING, None)
