"""The pipeline's steps against in-memory stand-ins of our own ports: decisions, not plumbing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from execution_stream.domain.models import ExecutionStatus
from execution_stream.domain.store import (
    ExecutionKey,
    RepositoryUnavailableError,
    StatusChange,
    StatusUpdateResult,
)
from execution_stream.domain.timestamps import parse_timestamp
from execution_stream.pipeline import retrying
from execution_stream.pipeline.messages import (
    AllocationRelease,
    AllocationRequest,
    Destination,
    WakeUp,
    allocation_message,
)
from execution_stream.pipeline.status_updates import StatusUpdateStep
from execution_stream.pipeline.triggers import TriggerStep
from tests.support.factories import BASE_TIME, asset
from tests.support.fake_store import FakeStore
from tests.support.pipeline_steps import (
    Assets,
    RecordingGithub,
    RecordingRunnerJobs,
    allocation_step,
    clock,
    dispatch_step,
    handled,
    park,
    parking_step,
    reasons,
    sent,
    source,
    stored_pending,
    trigger_source,
)

S = ExecutionStatus


async def test_triggers_are_stored_once_and_ask_for_one_slot_each() -> None:
    repository = FakeStore()
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
    repository = FakeStore()
    step = TriggerStep(repository, Assets({"asset-1": asset()}), clock)
    await step.handle([trigger_source(1, 1)])
    [key] = repository.items
    await repository.update_status(key, StatusChange(S.DISPATCHED, BASE_TIME))

    effects = await step.handle([trigger_source(1, 1)])

    assert effects.outgoing == []


async def test_an_unknown_asset_stores_the_execution_waiting_and_parks_a_reference() -> None:
    repository = FakeStore()
    step = TriggerStep(repository, Assets({"asset-1": asset(tenant_id="tenant-b")}), clock)

    effects = await step.handle([trigger_source(1, 1), trigger_source(2, 2, asset_id="asset-9")])

    assert reasons(effects) == ["asset_mismatch"]
    [parked] = sent(effects, Destination.WAITING)
    assert (parked["type"], parked["tenant_id"], parked["source"]["offset"]) == ("park", "tenant-a", 2)
    assert "value" not in parked["source"]
    [waiting] = repository.items.values()
    assert (waiting.status, waiting.waiting_for_asset, waiting.asset_name) == (S.PENDING, "asset-9", "")
    assert sent(effects, Destination.ALLOCATE) == []


async def test_parked_triggers_proceed_in_batches_when_their_asset_comes_or_are_dead_lettered() -> None:
    assets, now, repository = Assets(), [BASE_TIME], FakeStore()
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
            writes, effects = await step.decide(message)
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


async def test_the_allocator_forwards_references_up_to_the_limit_and_the_next_on_release() -> None:
    repository = FakeStore()
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
    repository = FakeStore()
    execution = await stored_pending(repository, "jit_runner")
    old = allocation_message.validate_python(
        {"type": "request", "execution": execution.model_dump(mode="json")}
    )
    assert old == AllocationRequest.of(execution)


async def test_a_topic_fed_job_is_published_marked_and_not_sent_again() -> None:
    repository, jobs = FakeStore(), RecordingRunnerJobs()
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
    repository = FakeStore()
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
    repository = FakeStore()
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


class AnswerLosingRepository(FakeStore):
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
    repository = FakeStore()
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
