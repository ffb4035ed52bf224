"""The pipeline's steps against in-memory stand-ins of our own ports: decisions, not plumbing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from execution_stream.domain.allocation import Memory
from execution_stream.domain.dispatch import DispatchRefusedError, DispatchRetryPolicy
from execution_stream.domain.enrichment import DispatchedJob, GithubWorkflowTarget
from execution_stream.domain.executions import TransitionNotAllowedError, apply_status, asset_target
from execution_stream.domain.models import Asset, Execution, ExecutionStatus
from execution_stream.domain.ports import (
    CreateResult,
    ExecutionKey,
    ExecutionPage,
    ExecutionQuery,
    RepositoryUnavailableError,
    StatusChange,
    StatusUpdateResult,
    UpdateOutcome,
)
from execution_stream.domain.timestamps import format_timestamp, parse_timestamp
from execution_stream.domain.trace import TraceContext
from execution_stream.pipeline import retrying
from execution_stream.pipeline.allocations import AllocationStep, Limits
from execution_stream.pipeline.dispatches import DispatchStep
from execution_stream.pipeline.messages import (
    AllocationRelease,
    AllocationRequest,
    Destination,
    Effects,
    SourceRecord,
    WakeUp,
    allocation_message,
    waiting_message,
)
from execution_stream.pipeline.parked_triggers import ParkedTriggerStep
from execution_stream.pipeline.ports import NoQueueView
from execution_stream.pipeline.status_updates import StatusUpdateStep
from execution_stream.pipeline.triggers import TriggerStep
from tests.factories import BASE_TIME, asset, trigger_event

S = ExecutionStatus


class MemoryRepository:
    def __init__(self) -> None:
        self.items: dict[ExecutionKey, Execution] = {}
        self.held: dict[ExecutionKey, list[StatusChange]] = {}

    async def create(self, execution: Execution) -> CreateResult:
        key = ExecutionKey.of(execution)
        if key in self.items:
            return CreateResult(self.items[key], created=False)
        self.items[key] = execution
        return CreateResult(execution, created=True)

    async def create_many(self, executions: Sequence[Execution]) -> list[CreateResult]:
        return [await self.create(execution) for execution in executions]

    async def get(self, key: ExecutionKey) -> Execution | None:
        return self.items.get(key)

    async def update_status(
        self, key: ExecutionKey, change: StatusChange, plan_item_slug: str | None = None
    ) -> StatusUpdateResult:
        stored = self.items.get(key)
        if stored is None:
            return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
        held = tuple(self.held.get(key, ()))
        try:
            updated = apply_status(stored, change.status, change.at, change.has_findings, change.error)
        except TransitionNotAllowedError:
            return StatusUpdateResult(UpdateOutcome.REFUSED, stored.status, stored, held)
        if change.deadline_at is not None:
            updated = updated.model_copy(update={"deadline_at": format_timestamp(change.deadline_at)})
        self.items[key] = updated
        return StatusUpdateResult(UpdateOutcome.APPLIED, stored.status, updated, held)

    async def hold_report(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        stored = self.items.get(key)
        if stored is None:
            return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
        held = self.held.setdefault(key, [])
        pending = stored.status is S.PENDING and stored.waiting_for_asset is None
        if pending and change not in held:
            held.append(change)
        outcome = UpdateOutcome.HELD if pending and change in held else UpdateOutcome.REFUSED
        return StatusUpdateResult(outcome, stored.status, stored, tuple(held))

    async def held_reports(self, key: ExecutionKey) -> tuple[StatusChange, ...]:
        return tuple(self.held.get(key, ()))

    async def complete_waiting(self, key: ExecutionKey, asset: Asset) -> Execution | None:
        stored = self.items.get(key)
        if stored is not None and stored.waiting_for_asset and stored.status is S.PENDING:
            fields: dict[str, Any] = {
                "asset_name": asset.asset_name,
                "asset_type": asset.asset_type,
                "vendor": asset.vendor,
                "additional_attributes": {**stored.additional_attributes, **asset_target(asset)},
            }
            self.items[key] = stored = stored.model_copy(update={**fields, "waiting_for_asset": None})
        return stored

    async def list(self, query: ExecutionQuery) -> ExecutionPage:
        raise NotImplementedError("the pipeline never lists")

    async def ping(self) -> None:
        return None


class Assets(dict[str, Asset]):
    pass


RETRY_POLICY = DispatchRetryPolicy(first_seconds=5.0, max_seconds=300.0)


class RecordingGithub:
    def __init__(self, refuse: bool = False) -> None:
        self.targets: list[GithubWorkflowTarget] = []
        self.refuse = refuse

    async def dispatch(self, target: GithubWorkflowTarget) -> None:
        if self.refuse:
            raise DispatchRefusedError(422, "Unexpected inputs provided")
        self.targets.append(target)


class RecordingRunnerJobs:
    def __init__(self) -> None:
        self.jobs: list[DispatchedJob] = []
        self.traces: list[TraceContext] = []

    async def publish(self, job: DispatchedJob, trace: TraceContext) -> None:
        self.jobs.append(job)
        self.traces.append(trace)


def clock() -> datetime:
    return BASE_TIME


def source(offset: int, value: bytes, topic: str = "trigger-execution") -> SourceRecord:
    return SourceRecord(topic, 0, offset, b"tenant-a", value)


def trigger_source(
    offset: int, number: int, runner: str = "jit_runner", asset_id: str = "asset-1", **overrides: Any
) -> SourceRecord:
    event = trigger_event("tenant-a", f"event-{number}", asset_id, job_runner=runner, **overrides)
    return source(offset, event.model_dump_json().encode())


def sent(effects: Effects, destination: Destination) -> list[dict[str, Any]]:
    return [json.loads(o.value) for o in effects.outgoing if o.destination is destination]


def reasons(effects: Effects) -> list[str]:
    return [
        dict(o.headers)["dlq.reason"].decode() for o in effects.outgoing if o.destination is Destination.DLQ
    ]


async def test_triggers_are_stored_once_and_ask_for_one_slot_each() -> None:
    repository = MemoryRepository()
    step = TriggerStep(repository, Assets({"asset-1": asset()}), clock)

    effects = await step.handle(
        [trigger_source(1, 1), trigger_source(2, 1), trigger_source(3, 2), source(4, b"{")]
    )

    assert len(repository.items) == 2
    assert [r["jit_event_id"] for r in sent(effects, Destination.ALLOCATE)] == [
        "event-1",
        "event-2",
    ]
    assert [e["status"] for e in sent(effects, Destination.EVENTS)] == ["pending", "pending"]
    assert reasons(effects) == ["not_json"]


async def test_a_replayed_trigger_of_a_dispatched_execution_asks_for_nothing() -> None:
    repository = MemoryRepository()
    step = TriggerStep(repository, Assets({"asset-1": asset()}), clock)
    await step.handle([trigger_source(1, 1)])
    [key] = repository.items
    await repository.update_status(key, StatusChange(S.DISPATCHED, BASE_TIME))

    effects = await step.handle([trigger_source(1, 1)])

    assert effects.outgoing == []


async def test_an_unknown_asset_stores_the_execution_waiting_and_parks_a_reference() -> None:
    repository = MemoryRepository()
    step = TriggerStep(repository, Assets({"asset-1": asset(tenant_id="tenant-b")}), clock)

    effects = await step.handle([trigger_source(1, 1), trigger_source(2, 2, asset_id="asset-9")])

    assert reasons(effects) == ["asset_mismatch"]
    [parked] = sent(effects, Destination.WAITING)
    assert (parked["type"], parked["tenant_id"], parked["source"]["offset"]) == ("park", "tenant-a", 2)
    assert "value" not in parked["source"]
    [waiting] = repository.items.values()
    assert (waiting.status, waiting.waiting_for_asset, waiting.asset_name) == (S.PENDING, "asset-9", "")
    assert sent(effects, Destination.ALLOCATE) == []


def parking_step(repository: MemoryRepository, assets: Assets, now: list[datetime]) -> ParkedTriggerStep:
    return ParkedTriggerStep({}, repository, assets, 60.0, lambda: now[0], batch=2)


async def park(step: ParkedTriggerStep, triggers: TriggerStep, records: list[SourceRecord]) -> None:
    for record in records:
        for message in sent(await triggers.handle([record]), Destination.WAITING):
            writes, effects = await step.handle(waiting_message.validate_python(message))
            step.commit(writes)
            assert effects.outgoing == []


async def test_parked_triggers_proceed_in_batches_when_their_asset_comes_or_are_dead_lettered() -> None:
    assets, now, repository = Assets(), [BASE_TIME], MemoryRepository()
    step = parking_step(repository, assets, now)
    triggers = TriggerStep(repository, assets, clock)
    await park(step, triggers, [trigger_source(n, n) for n in range(3)])
    never = trigger_source(9, 9, asset_id="asset-never")
    await park(step, triggers, [never])
    assert len([key for key in step.table if key.startswith("E#")]) == 4

    assets["asset-1"] = asset()
    now[0] = BASE_TIME + timedelta(seconds=61)
    wake_ups = sent(step.wake_ups(), Destination.WAITING)
    assert sorted(w["asset_id"] for w in wake_ups) == ["asset-1", "asset-never"]
    requested: list[str] = []
    for wake_up in wake_ups:
        message = WakeUp.model_validate(wake_up)
        while True:
            writes, effects = await step.handle(message)
            step.commit(writes)
            requested += [r["jit_event_id"] for r in sent(effects, Destination.ALLOCATE)]
            if not sent(effects, Destination.WAITING):  # a batch of 2: asks for more while some wait
                break
        if message.asset_id == "asset-never":
            assert reasons(effects) == ["asset_not_found"]
            [letter] = [o for o in effects.outgoing if o.destination is Destination.DLQ]
            assert json.loads(letter.value)["jit_event_id"] == "event-9"
            assert dict(letter.headers)["dlq.offset"] == b"9"

    assert requested == ["event-0", "event-1", "event-2"]
    assert step.table == {}
    statuses = sorted((e.jit_event_id, e.status, e.asset_name) for e in repository.items.values())
    assert statuses == [
        ("event-0", S.PENDING, "execution-service"),
        ("event-1", S.PENDING, "execution-service"),
        ("event-2", S.PENDING, "execution-service"),
        ("event-9", S.FAILED, ""),
    ]


def allocation_step(limit: int) -> AllocationStep:
    limits = Limits(limit, {"tenant-big": 100})
    return AllocationStep({}, limits, Memory(3600.0, 100), NoQueueView(), clock)


def handled(step: AllocationStep, message: Any) -> Effects:
    result, effects = step.handle(message)
    step.commit(result)
    return effects


async def test_the_allocator_forwards_references_up_to_the_limit_and_the_next_on_release() -> None:
    repository = MemoryRepository()
    triggers = TriggerStep(repository, Assets({"asset-1": asset()}), clock)
    requests = sent(await triggers.handle([trigger_source(n, n) for n in range(3)]), Destination.ALLOCATE)
    step = allocation_step(limit=1)
    forwarded = []
    for request in requests:
        forwarded += sent(handled(step, allocation_message.validate_python(request)), Destination.ENRICH)
    assert [f["jit_event_id"] for f in forwarded] == ["event-0"]
    reference_fields = {"tenant_id", "jit_event_id", "execution_id", "job_runner", "dispatch_attempt"}
    reference_fields |= {"traceparent", "tracestate"}
    assert set(forwarded[0]) == reference_fields

    again = handled(step, allocation_message.validate_python(requests[0]))
    assert [f["jit_event_id"] for f in sent(again, Destination.ENRICH)] == ["event-0"]  # held: again

    release = AllocationRelease(tenant_id="tenant-a", execution_id=forwarded[0]["execution_id"])
    assert [f["jit_event_id"] for f in sent(handled(step, release), Destination.ENRICH)] == ["event-1"]

    [overdue] = sent(step.overdue(-1), Destination.STATUS)
    assert (overdue["jit_event_id"], overdue["status"], overdue["error"]) == ("event-1", "failed", "timeout")
    assert step.waiting_by_tenant() == [("tenant-a", 1, BASE_TIME.timestamp())]


async def test_a_request_in_the_old_format_with_the_whole_execution_is_still_understood() -> None:
    repository = MemoryRepository()
    execution = await stored_pending(repository, "jit_runner")
    old = allocation_message.validate_python(
        {"type": "request", "execution": execution.model_dump(mode="json")}
    )
    assert old == AllocationRequest.of(execution)


async def stored_pending(repository: MemoryRepository, runner: str, **overrides: Any) -> Execution:
    triggers = TriggerStep(repository, Assets({"asset-1": asset()}), clock)
    await triggers.handle([trigger_source(1, 1, runner=runner, **overrides)])
    [execution] = repository.items.values()
    return execution


def dispatch_step(
    repository: MemoryRepository, github: RecordingGithub, jobs: RecordingRunnerJobs
) -> DispatchStep:
    return DispatchStep(repository, github, jobs, "execution-status", 600, RETRY_POLICY, clock)


async def test_a_topic_fed_job_is_published_marked_and_not_sent_again() -> None:
    repository, jobs = MemoryRepository(), RecordingRunnerJobs()
    execution = await stored_pending(repository, "jit_runner")
    step = dispatch_step(repository, RecordingGithub(), jobs)
    record = source(1, execution.model_dump_json().encode(), "enrich-and-dispatch")

    effects = await step.handle([record, record])
    again = await step.handle([record])

    assert [j.execution_id for j in jobs.jobs] == [execution.execution_id]
    assert jobs.jobs[0].report_status_to.topic == "execution-status"
    assert [e["status"] for e in sent(effects, Destination.EVENTS)] == ["dispatched"]
    # One deadline: the runner's, the item's and the slot's lease are the same moment.
    stored = repository.items[ExecutionKey.of(execution)]
    [lease] = sent(effects, Destination.ALLOCATE)
    assert stored.deadline_at == jobs.jobs[0].deadline_at
    assert parse_timestamp(lease["deadline_at"]) == parse_timestamp(jobs.jobs[0].deadline_at)
    # A replay sends no job; it publishes the dispatched event and the lease again (at least once).
    assert [(o.destination, json.loads(o.value).get("status")) for o in again.outgoing] == [
        (Destination.EVENTS, "dispatched"),
        (Destination.ALLOCATE, None),
    ]
    assert len(jobs.jobs) == 1
    assert stored.status is S.DISPATCHED


async def test_a_refused_github_dispatch_fails_the_execution_frees_its_slot_and_is_dead_lettered() -> None:
    repository = MemoryRepository()
    execution = await stored_pending(repository, "github_actions")
    step = dispatch_step(repository, RecordingGithub(refuse=True), RecordingRunnerJobs())

    record = source(1, execution.model_dump_json().encode(), "enrich-and-dispatch")
    effects = await step.handle([record])
    replay = await step.handle([record])

    failed = repository.items[ExecutionKey.of(execution)]
    assert failed.status is S.FAILED
    assert failed.error is not None
    assert "422" in failed.error
    assert reasons(effects) == ["dispatch_refused"]
    assert sent(effects, Destination.ALLOCATE) == [
        {
            "type": "release",
            "tenant_id": "tenant-a",
            "execution_id": execution.execution_id,
            "job_runner": "github_actions",
        }
    ]
    assert [(e["status"], e["previous_status"]) for e in sent(effects, Destination.EVENTS)] == [
        ("failed", "pending")
    ]
    # A crash may have come before these were sent: a replay sends them again.
    assert sent(replay, Destination.EVENTS) == sent(effects, Destination.EVENTS)
    assert reasons(replay) == ["dispatch_refused"]
    assert sent(replay, Destination.ALLOCATE) == sent(effects, Destination.ALLOCATE)


async def test_a_replayed_terminal_status_releases_the_slot_and_publishes_its_event_again() -> None:
    repository = MemoryRepository()
    execution = await stored_pending(repository, "jit_runner")
    await repository.update_status(ExecutionKey.of(execution), StatusChange(S.DISPATCHED, BASE_TIME))
    step = StatusUpdateStep(repository)
    update = {
        "tenant_id": "tenant-a",
        "jit_event_id": execution.jit_event_id,
        "execution_id": execution.execution_id,
        "at": "2026-01-01T00:01:00",
    }
    running = source(1, json.dumps({**update, "status": "running"}).encode(), "execution-status")
    done = source(
        2, json.dumps({**update, "status": "completed", "has_findings": True}).encode(), "execution-status"
    )
    unknown = source(3, json.dumps({**update, "execution_id": "0" * 32, "status": "failed"}).encode())

    effects = await step.handle([running, done, unknown, source(4, b"[]", "execution-status")])
    replay = await step.handle([done])
    later_report = {**update, "at": "2026-01-01T00:02:00", "status": "completed"}
    duplicate = await step.handle([source(5, json.dumps(later_report).encode(), "execution-status")])

    assert [(e["status"], e["previous_status"]) for e in sent(effects, Destination.EVENTS)] == [
        ("running", "dispatched"),
        ("completed", "running"),
    ]
    # The unknown execution's update gives back a slot it might hold (the watchdog's, of a lost item).
    assert [r["type"] for r in sent(effects, Destination.ALLOCATE)] == ["release", "release"]
    assert reasons(effects) == ["invalid"]
    # A crash may have come between the stored change and its event: the same update publishes it again.
    assert sent(replay, Destination.EVENTS) == sent(effects, Destination.EVENTS)[1:]
    # Another report of a status it is in already is refused and publishes nothing.
    assert sent(duplicate, Destination.EVENTS) == []
    assert [r["type"] for r in sent(duplicate, Destination.ALLOCATE)] == ["release"]
    assert [r["type"] for r in sent(replay, Destination.ALLOCATE)] == ["release"]
    assert repository.items[ExecutionKey.of(execution)].has_findings is True


class AnswerLosingRepository(MemoryRepository):
    """Applies the first status update it is given, then fails as if the answer never came back."""

    def __init__(self) -> None:
        super().__init__()
        self.answers_lost = 0

    async def update_status(
        self, key: ExecutionKey, change: StatusChange, plan_item_slug: str | None = None
    ) -> StatusUpdateResult:
        result = await super().update_status(key, change, plan_item_slug)
        if self.answers_lost == 0:
            self.answers_lost += 1
            raise RepositoryUnavailableError("read timeout")
        return result


async def test_a_dispatch_mark_whose_answer_was_lost_still_publishes_its_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retrying, "MAX_PAUSE_SECONDS", 0.0)
    repository, jobs = AnswerLosingRepository(), RecordingRunnerJobs()
    execution = await stored_pending(repository, "jit_runner")

    effects = await dispatch_step(repository, RecordingGithub(), jobs).handle(
        [source(1, execution.model_dump_json().encode(), "enrich-and-dispatch")]
    )

    assert repository.answers_lost == 1
    assert len(jobs.jobs) == 1
    assert [(e["status"], e["previous_status"]) for e in sent(effects, Destination.EVENTS)] == [
        ("dispatched", "pending")
    ]


async def test_a_status_update_whose_answer_was_lost_still_publishes_its_event_and_releases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(retrying, "MAX_PAUSE_SECONDS", 0.0)
    repository = MemoryRepository()
    execution = await stored_pending(repository, "jit_runner")
    key = ExecutionKey.of(execution)
    await repository.update_status(key, StatusChange(S.DISPATCHED, BASE_TIME))
    await repository.update_status(key, StatusChange(S.RUNNING, BASE_TIME))
    losing = AnswerLosingRepository()
    losing.items = repository.items
    update = {
        "tenant_id": "tenant-a",
        "jit_event_id": execution.jit_event_id,
        "execution_id": execution.execution_id,
        "at": "2026-01-01T00:01:00",
        "status": "completed",
    }

    effects = await StatusUpdateStep(losing).handle(
        [source(1, json.dumps(update).encode(), "execution-status")]
    )

    assert losing.answers_lost == 1
    assert [(e["status"], e["previous_status"]) for e in sent(effects, Destination.EVENTS)] == [
        ("completed", "running")
    ]
    assert [r["type"] for r in sent(effects, Destination.ALLOCATE)] == ["release"]
