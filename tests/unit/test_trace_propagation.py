"""A trigger's trace context on every record it causes, across every hop of the pipeline."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from execution_stream.domain.dispatch import DispatchUnavailableError, RunDetails
from execution_stream.domain.enrichment import GithubWorkflowTarget
from execution_stream.domain.models import Execution
from execution_stream.domain.store import ExecutionKey
from execution_stream.domain.trace import TraceContext, valid_traceparent
from execution_stream.pipeline.allocations import AllocationStep
from execution_stream.pipeline.dispatches import DispatchStep
from execution_stream.pipeline.messages import (
    AllocationRelease,
    AllocationRequest,
    Destination,
    Effects,
    Outgoing,
    SourceRecord,
    WakeUp,
    allocation_message,
    waiting_message,
)
from execution_stream.pipeline.status_updates import StatusUpdateStep
from execution_stream.pipeline.triggers import TriggerStep
from execution_stream.streaming.agent_loop import TopicRunnerJobs, source_record
from tests.support.factories import BASE_TIME, asset, trigger_event
from tests.support.factories import execution as stored_execution
from tests.support.fake_store import FakeStore
from tests.support.pipeline_steps import (
    RETRY_POLICY,
    Assets,
    RecordingGithub,
    RecordingRunnerJobs,
    allocation_step,
    clock,
    dispatch_step,
    handled,
    parking_step,
)

TRIGGER_TRACE = TraceContext("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE")
OTHER_TRACE = TraceContext("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
RUNNER_TRACE = TraceContext("00-11111111111111111111111111111111-2222222222222222-01")


def trigger(
    offset: int, trace: TraceContext | None, asset_id: str = "asset-1", runner: str = "jit_runner"
) -> SourceRecord:
    event = trigger_event("tenant-a", f"event-{offset}", asset_id, job_runner=runner)
    headers = tuple((name, value.encode()) for name, value in trace.fields().items()) if trace else ()
    return SourceRecord(
        "trigger-execution", 0, offset, b"tenant-a", event.model_dump_json().encode(), None, headers
    )


def read(outgoing: Outgoing, topic: str, offset: int = 0) -> SourceRecord:
    """An outgoing record as the next agent receives it, headers included."""
    key = outgoing.key.encode() if outgoing.key is not None else None
    return SourceRecord(topic, 0, offset, key, outgoing.value, None, outgoing.headers)


def trace_of(outgoing: Outgoing) -> TraceContext | None:
    headers = {name: value.decode() for name, value in outgoing.headers}
    return TraceContext.parse(headers.get("traceparent"), headers.get("tracestate"))


def traceparent_header(outgoing: Outgoing) -> str:
    return dict(outgoing.headers)["traceparent"].decode()


def to(effects: Effects, destination: Destination) -> list[Outgoing]:
    return [o for o in effects.outgoing if o.destination is destination]


def allocate(step: AllocationStep, outgoing: Outgoing) -> Effects:
    return handled(step, allocation_message.validate_python(json.loads(outgoing.value)))


def report(execution: Execution, status: str, minute: int, trace: TraceContext) -> SourceRecord:
    update = {
        "tenant_id": execution.tenant_id,
        "jit_event_id": execution.jit_event_id,
        "execution_id": execution.execution_id,
        "status": status,
        "at": (BASE_TIME + timedelta(minutes=minute)).isoformat(),
    }
    headers = tuple((name, value.encode()) for name, value in trace.fields().items())
    return SourceRecord(
        "execution-status", 0, minute, b"tenant-a", json.dumps(update).encode(), None, headers
    )


async def test_a_triggers_traceparent_goes_on_every_record_down_to_its_job_and_its_events() -> None:
    repository, jobs = FakeStore(), RecordingRunnerJobs()
    created = await TriggerStep(repository, Assets({"asset-1": asset()}), clock).handle(
        [trigger(1, TRIGGER_TRACE)]
    )
    [execution] = repository.items.values()
    [request] = to(created, Destination.ALLOCATE)
    admitted = allocate(allocation_step(limit=1), request)
    [reference] = to(admitted, Destination.ENRICH)
    dispatched = await dispatch_step(repository, RecordingGithub(), jobs).handle(
        [read(reference, "enrich-and-dispatch")]
    )
    # The runner reports with a trace context of its own; the execution's events keep the trigger's.
    finished = await StatusUpdateStep(repository).handle(
        [report(execution, "running", 1, RUNNER_TRACE), report(execution, "completed", 2, RUNNER_TRACE)]
    )

    assert (execution.traceparent, execution.tracestate) == (
        TRIGGER_TRACE.traceparent,
        TRIGGER_TRACE.tracestate,
    )
    assert json.loads(request.value)["traceparent"] == TRIGGER_TRACE.traceparent
    assert json.loads(reference.value)["tracestate"] == TRIGGER_TRACE.tracestate
    assert jobs.traces == [TRIGGER_TRACE]
    every = [*created.outgoing, *admitted.outgoing, *dispatched.outgoing, *finished.outgoing]
    assert [(o.destination, trace_of(o)) for o in every] == [(o.destination, TRIGGER_TRACE) for o in every]
    assert [json.loads(o.value)["status"] for o in to(finished, Destination.EVENTS)] == [
        "running",
        "completed",
    ]
    assert to(finished, Destination.ALLOCATE) != []


async def test_a_trigger_without_a_traceparent_gets_a_new_one_that_all_its_records_share() -> None:
    repository = FakeStore()
    created = await TriggerStep(repository, Assets({"asset-1": asset()}), clock).handle(
        [trigger(1, None), trigger(2, TraceContext("not-a-traceparent", "congo=t61rcWkgMzE"))]
    )
    admitted = [allocate(allocation_step(limit=5), r) for r in to(created, Destination.ALLOCATE)]

    stored = {e.jit_event_id: e.trace for e in repository.items.values()}
    assert all(
        valid_traceparent(t.traceparent) == t.traceparent and t.tracestate is None for t in stored.values()
    )
    assert stored["event-1"].trace_id != stored["event-2"].trace_id
    by_event = {json.loads(o.value)["jit_event_id"]: trace_of(o) for o in created.outgoing}
    by_event |= {json.loads(o.value)["jit_event_id"]: trace_of(o) for e in admitted for o in e.outgoing}
    assert by_event == stored


async def test_a_queued_execution_admitted_by_anothers_release_carries_its_own_triggers_trace() -> None:
    repository = FakeStore()
    created = await TriggerStep(repository, Assets({"asset-1": asset()}), clock).handle(
        [trigger(1, TRIGGER_TRACE), trigger(2, OTHER_TRACE)]
    )
    step = allocation_step(limit=1)
    first, second = (allocate(step, r) for r in to(created, Destination.ALLOCATE))
    [holder] = to(first, Destination.ENRICH)
    release = AllocationRelease(tenant_id="tenant-a", execution_id=json.loads(holder.value)["execution_id"])

    [admitted] = to(handled(step, release), Destination.ENRICH)

    assert to(second, Destination.ENRICH) == []  # it waited
    assert (trace_of(holder), trace_of(admitted)) == (TRIGGER_TRACE, OTHER_TRACE)
    assert json.loads(admitted.value)["traceparent"] == OTHER_TRACE.traceparent


async def test_the_watchdogs_timeout_and_a_set_aside_retry_carry_the_holders_trace() -> None:
    repository = FakeStore()
    created = await TriggerStep(repository, Assets({"asset-1": asset()}), clock).handle(
        [trigger(1, TRIGGER_TRACE, runner="github_actions")]
    )
    step = allocation_step(limit=1)
    [reference] = to(allocate(step, to(created, Destination.ALLOCATE)[0]), Destination.ENRICH)
    github = UnavailableGithub()
    set_aside = await DispatchStep(
        repository, github, RecordingRunnerJobs(), "execution-status", 600, RETRY_POLICY, clock
    ).handle([read(reference, "enrich-and-dispatch")])
    [aside] = to(set_aside, Destination.ALLOCATE)
    handled(step, allocation_message.validate_python(json.loads(aside.value)))
    step.now = lambda: BASE_TIME + timedelta(hours=1)

    [retry] = to(step.due_retries(), Destination.ENRICH)
    [timeout] = to(step.overdue(60), Destination.STATUS)

    assert [trace_of(o) for o in (aside, retry, timeout)] == [TRIGGER_TRACE] * 3
    assert json.loads(retry.value)["traceparent"] == TRIGGER_TRACE.traceparent


class UnavailableGithub(RecordingGithub):
    async def dispatch(self, target: GithubWorkflowTarget) -> RunDetails | None:
        raise DispatchUnavailableError("GitHub answered 503")


async def test_dead_letters_of_a_trigger_carry_its_trace_or_the_new_one() -> None:
    repository = FakeStore()
    step = TriggerStep(repository, Assets({"asset-1": asset(tenant_id="tenant-b")}), clock)
    not_json = SourceRecord(
        "trigger-execution", 0, 3, b"tenant-a", b"{", None, trigger(3, OTHER_TRACE).headers
    )

    effects = await step.handle([trigger(1, TRIGGER_TRACE), trigger(2, None), not_json])

    mismatch, without, broken = to(effects, Destination.DLQ)
    assert (trace_of(mismatch), trace_of(broken)) == (TRIGGER_TRACE, OTHER_TRACE)
    new = trace_of(without)
    assert new is not None
    assert new.trace_id not in {TRIGGER_TRACE.trace_id, OTHER_TRACE.trace_id}


async def test_a_refused_dispatch_is_dead_lettered_and_logged_with_its_triggers_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    repository = FakeStore()
    await TriggerStep(repository, Assets({"asset-1": asset()}), clock).handle(
        [trigger(1, TRIGGER_TRACE, runner="github_actions")]
    )
    [execution] = repository.items.values()
    untraced_reference = json.dumps({**json.loads(execution.model_dump_json()), "traceparent": None})
    record = SourceRecord("enrich-and-dispatch", 0, 1, b"tenant-a", untraced_reference.encode())

    with caplog.at_level(logging.WARNING):
        effects = await dispatch_step(repository, RecordingGithub(refuse=True), RecordingRunnerJobs()).handle(
            [record]
        )

    assert {trace_of(o) for o in effects.outgoing} == {TRIGGER_TRACE}
    assert len(to(effects, Destination.DLQ)) == 1
    [line] = [r for r in caplog.records if r.getMessage().startswith("dispatch failed")]
    assert (line.__dict__["trace_id"], line.__dict__["execution_id"]) == (
        TRIGGER_TRACE.trace_id,
        execution.execution_id,
    )


async def test_a_parked_trigger_keeps_its_trace_until_its_asset_comes_or_its_dead_letter() -> None:
    assets, now, repository = Assets(), [BASE_TIME], FakeStore()
    parking = parking_step(repository, assets, now)
    triggers = TriggerStep(repository, assets, clock)
    created = await triggers.handle(
        [trigger(1, TRIGGER_TRACE), trigger(2, OTHER_TRACE, asset_id="asset-never")]
    )
    for parked in to(created, Destination.WAITING):
        assert json.loads(parked.value)["traceparent"] == traceparent_header(parked)
        parking.commit((await parking.decide(waiting_message.validate_python(json.loads(parked.value))))[0])
    assets["asset-1"] = asset()
    now[0] = BASE_TIME + timedelta(seconds=61)

    effects = Effects()
    for asset_id in ("asset-1", "asset-never"):
        writes, woken = await parking.decide(WakeUp(tenant_id="tenant-a", asset_id=asset_id))
        parking.commit(writes)
        effects.merge(woken)

    [request] = to(effects, Destination.ALLOCATE)
    [failed] = to(effects, Destination.EVENTS)
    [letter] = to(effects, Destination.DLQ)
    assert [trace_of(o) for o in to(created, Destination.WAITING)] == [TRIGGER_TRACE, OTHER_TRACE]
    assert (trace_of(request), trace_of(failed), trace_of(letter)) == (
        TRIGGER_TRACE,
        OTHER_TRACE,
        OTHER_TRACE,
    )
    assert AllocationRequest.model_validate_json(request.value).trace == TRIGGER_TRACE


async def test_an_execution_stored_before_trace_contexts_gets_one_derived_from_its_id_on_each_record() -> (
    None
):
    repository, jobs = FakeStore(), RecordingRunnerJobs()
    legacy = stored_execution("tenant-a", 1).model_copy(update={"job_runner": "jit_runner"})
    repository.items[ExecutionKey.of(legacy)] = legacy
    old_request = AllocationRequest.of(legacy)
    step = allocation_step(limit=1)

    [reference] = to(handled(step, old_request), Destination.ENRICH)
    dispatched = await dispatch_step(repository, RecordingGithub(), jobs).handle(
        [read(reference, "enrich-and-dispatch")]
    )

    derived = TraceContext.derived(legacy.execution_id)
    assert legacy.traceparent is None
    assert legacy.trace == derived
    assert jobs.traces == [derived]
    assert {trace_of(o) for o in [reference, *dispatched.outgoing]} == {derived}


async def test_runner_jobs_go_with_their_trace_headers_and_consumed_headers_are_read() -> None:
    sent: list[dict[str, Any]] = []

    class Topic:
        async def send(self, **record: Any) -> Any:
            sent.append(record)
            return _done()

    repository = FakeStore()
    await TriggerStep(repository, Assets({"asset-1": asset()}), clock).handle([trigger(1, TRIGGER_TRACE)])
    [execution] = repository.items.values()
    step = DispatchStep(
        repository, RecordingGithub(), TopicRunnerJobs(Topic()), "execution-status", 600, RETRY_POLICY, clock
    )
    await step.handle(
        [SourceRecord("enrich-and-dispatch", 0, 1, b"tenant-a", execution.model_dump_json().encode())]
    )
    message = SimpleNamespace(
        topic="runner-jobs",
        partition=0,
        offset=0,
        key=b"tenant-a",
        value=b"{}",
        timestamp=None,
        headers=sent[0]["headers"],
    )

    assert sent[0]["headers"] == [
        ("traceparent", TRIGGER_TRACE.traceparent.encode()),
        ("tracestate", b"congo=t61rcWkgMzE"),
    ]
    assert source_record(SimpleNamespace(message=message)).received_trace() == TRIGGER_TRACE


async def _done() -> None:
    return None
