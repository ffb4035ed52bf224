"""A job whose runner cannot take it now is set aside with its retry time; nothing waits for it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from execution_stream.domain import commits
from execution_stream.domain.allocation import Allocator, Memory
from execution_stream.domain.dispatch import (
    CancelOutcome,
    DispatchRetryPolicy,
    DispatchUnavailableError,
    GithubRun,
    RunDetails,
)
from execution_stream.domain.enrichment import GithubWorkflowTarget
from execution_stream.pipeline.allocations import AllocationStep, Limits
from execution_stream.pipeline.dispatches import DispatchStep
from execution_stream.pipeline.messages import (
    AllocationLease,
    AllocationRequest,
    AllocationSetAside,
    Destination,
    ExecutionRef,
    WakeUp,
    allocation_message,
)
from execution_stream.pipeline.ports import NoQueueView
from execution_stream.pipeline.triggers import TriggerStep
from execution_stream.streaming.partitions import tenant_partition
from tests.support.factories import BASE_TIME, asset, trigger_event
from tests.support.fake_store import FakeStore
from tests.support.pipeline_steps import (
    RETRY_POLICY,
    Assets,
    RecordingRunnerJobs,
    S,
    clock,
    park,
    parking_step,
    reasons,
    sent,
    source,
)

RATE_LIMITED_INSTALLATION = "111"
RESET_SECONDS = 3000.0


class RateLimitedGithub:
    """GitHub as it answers while one installation's rate limit is used up."""

    def __init__(self) -> None:
        self.targets: list[GithubWorkflowTarget] = []

    async def dispatch(self, target: GithubWorkflowTarget) -> RunDetails | None:
        if target.installation_id == RATE_LIMITED_INSTALLATION:
            raise DispatchUnavailableError("API rate limit exceeded for installation", RESET_SECONDS)
        self.targets.append(target)
        return None

    async def cancel_run(self, run: GithubRun) -> CancelOutcome:
        raise AssertionError("nothing is canceled here")


async def stored(repository: FakeStore, tenant: str, runner: str, installation: str) -> ExecutionRef:
    assets = Assets({"asset-1": asset(tenant).model_copy(update={"installation_id": installation})})
    event = trigger_event(tenant, f"event-{tenant}-{runner}", "asset-1", job_runner=runner)
    await TriggerStep(repository, assets, clock).handle([source(0, event.model_dump_json().encode())])
    [execution] = [e for e in repository.items.values() if e.jit_event_id == event.jit_event_id]
    return ExecutionRef.of(execution)


async def test_a_rate_limited_installation_sets_its_job_aside_and_the_batch_completes() -> None:
    repository, github, jobs = FakeStore(), RateLimitedGithub(), RecordingRunnerJobs()
    limited = await stored(repository, "tenant-a", "github_actions", RATE_LIMITED_INSTALLATION)
    other_github = await stored(repository, "tenant-b", "github_actions", "222")
    topic_fed = await stored(repository, "tenant-b", "jit_runner", "222")
    step = DispatchStep(repository, github, jobs, "execution-status", 600, RETRY_POLICY, clock)
    records = [
        source(n, ref.model_dump_json().encode()) for n, ref in enumerate([limited, other_github, topic_fed])
    ]

    effects = await asyncio.wait_for(step.handle(records), timeout=5)

    statuses = {e.execution_id: e.status for e in repository.items.values()}
    assert statuses == {
        limited.execution_id: S.PENDING,
        other_github.execution_id: S.DISPATCHED,
        topic_fed.execution_id: S.DISPATCHED,
    }
    assert [t.installation_id for t in github.targets] == ["222"]
    assert [j.execution_id for j in jobs.jobs] == [topic_fed.execution_id]
    [aside] = [m for m in sent(effects, Destination.ALLOCATE) if m["type"] == "set_aside"]
    message = allocation_message.validate_python(aside)
    assert isinstance(message, AllocationSetAside)
    assert message.execution_id == limited.execution_id
    assert message.retry_at == BASE_TIME + timedelta(seconds=RESET_SECONDS)
    assert message.attempt == 1
    assert "rate limit" in message.reason
    assert {e["execution_id"] for e in sent(effects, Destination.EVENTS)} == {
        other_github.execution_id,
        topic_fed.execution_id,
    }


def test_the_retry_waits_as_the_runner_asks_else_backs_off_doubling_up_to_the_max() -> None:
    policy = DispatchRetryPolicy(first_seconds=5.0, max_seconds=300.0)
    assert policy.delay(0, RESET_SECONDS) == RESET_SECONDS
    assert [policy.delay(n, None) for n in range(8)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert policy.delay(1000, None) == 300


class Clock:
    def __init__(self) -> None:
        self.now = BASE_TIME

    def __call__(self) -> datetime:
        return self.now


def allocation(clock: Clock) -> AllocationStep:
    return AllocationStep({}, Limits(2, {}), Memory(3600.0, 100), NoQueueView(), clock)


def apply(step: AllocationStep, message: Any) -> list[dict[str, Any]]:
    result, effects = step.decide(message)
    step.commit(result)
    return sent(effects, Destination.ENRICH)


def set_aside(ref: ExecutionRef, retry_at: datetime, attempt: int = 1) -> AllocationSetAside:
    return AllocationSetAside(
        tenant_id=ref.tenant_id,
        execution_id=ref.execution_id,
        job_runner=ref.job_runner,
        retry_at=retry_at,
        attempt=attempt,
        reason="API rate limit exceeded",
    )


REF = ExecutionRef(
    tenant_id="tenant-a",
    jit_event_id="event-1",
    execution_id="exec-1",
    job_runner="github_actions",
    traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    tracestate="congo=t61rcWkgMzE",
)


def test_a_set_aside_holder_is_sent_to_dispatch_again_once_when_its_time_comes() -> None:
    clock = Clock()
    step = allocation(clock)
    assert len(apply(step, AllocationRequest(**REF.model_dump(exclude={"dispatch_attempt"})))) == 1
    apply(step, set_aside(REF, BASE_TIME + timedelta(seconds=60)))

    clock.now = BASE_TIME + timedelta(seconds=59)
    assert sent(step.due_retries(), Destination.ENRICH) == []
    clock.now = BASE_TIME + timedelta(seconds=60)
    [retry] = sent(step.due_retries(), Destination.ENRICH)
    assert sent(step.due_retries(), Destination.ENRICH) == []  # sent once for this retry time
    assert ExecutionRef.model_validate(retry) == REF.model_copy(update={"dispatch_attempt": 1})

    apply(step, set_aside(REF, BASE_TIME + timedelta(seconds=120), attempt=2))
    clock.now = BASE_TIME + timedelta(seconds=121)
    [again] = sent(step.due_retries(), Destination.ENRICH)
    assert again["dispatch_attempt"] == 2


def test_a_dispatched_holder_is_never_retried_and_a_late_set_aside_changes_nothing() -> None:
    clock = Clock()
    step = allocation(clock)
    apply(step, AllocationRequest(**REF.model_dump(exclude={"dispatch_attempt"})))
    lease = AllocationLease(
        tenant_id="tenant-a",
        execution_id="exec-1",
        job_runner="github_actions",
        deadline_at=BASE_TIME + timedelta(hours=1),
    )
    apply(step, lease)
    apply(step, set_aside(REF, BASE_TIME + timedelta(seconds=1)))
    clock.now = BASE_TIME + timedelta(seconds=10)
    assert sent(step.due_retries(), Destination.ENRICH) == []


def test_a_job_set_aside_until_its_timeout_fails_saying_why_it_never_left() -> None:
    clock = Clock()
    step = allocation(clock)
    apply(step, AllocationRequest(**REF.model_dump(exclude={"dispatch_attempt"})))
    apply(step, set_aside(REF, BASE_TIME + timedelta(hours=2)))
    clock.now = BASE_TIME + timedelta(seconds=601)

    [failure] = sent(step.overdue(600), Destination.STATUS)

    assert failure["status"] == "failed"
    assert failure["error"] == "timeout: never dispatched: API rate limit exceeded"


def test_timers_act_only_on_the_tenants_this_worker_owns() -> None:
    clock = Clock()
    step = allocation(clock)
    for tenant in ("tenant-a", "tenant-b"):
        ref = REF.model_copy(update={"tenant_id": tenant})
        apply(step, AllocationRequest(**ref.model_dump(exclude={"dispatch_attempt"})))
        apply(step, set_aside(ref, BASE_TIME + timedelta(seconds=1)))
    clock.now = BASE_TIME + timedelta(seconds=601)

    def owns(tenant: str) -> bool:
        return tenant == "tenant-b"

    assert {m["tenant_id"] for m in sent(step.overdue(600, owns), Destination.STATUS)} == {"tenant-b"}
    assert {m["tenant_id"] for m in sent(step.due_retries(owns), Destination.ENRICH)} == {"tenant-b"}
    assert [tenant for tenant, _, _ in step.waiting_by_tenant(owns)] in ([], ["tenant-b"])
    assert {m["tenant_id"] for m in sent(step.overdue(600), Destination.STATUS)} == {"tenant-a", "tenant-b"}


def test_a_tenants_partition_is_the_one_the_producer_chooses() -> None:
    partitions = list(range(6))
    for tenant in ("tenant-a", "tenant-b", "acme", "ñandú", ""):
        assert tenant_partition(tenant, 6) == DefaultPartitioner()(tenant.encode(), partitions, partitions)


def test_the_allocator_keeps_a_set_aside_reason_small() -> None:
    table: dict[str, Any] = {}
    allocator = Allocator(table, lambda tenant, runner: 1, Memory(3600.0, 100))
    result = allocator.request("t", "e", "j", "r", now=0.0)
    commits.apply(table, result.writes)
    commits.apply(
        table, allocator.set_aside("t", "e", "r", retry_at=5.0, attempt=1, reason="x" * 5000).writes
    )
    [due] = allocator.due_retries(5.0)
    assert due.attempt == 1
    [late] = allocator.overdue(10_000.0, 60)
    assert late.set_aside == "x" * 300


async def test_a_github_job_goes_where_its_asset_says_not_where_its_trigger_says() -> None:
    repository, github = FakeStore(), RateLimitedGithub()
    ref = await stored(repository, "tenant-b", "github_actions", "222")
    stored_attributes = repository.items[next(iter(repository.items))].additional_attributes
    step = DispatchStep(
        repository, github, RecordingRunnerJobs(), "execution-status", 600, RETRY_POLICY, clock
    )

    await step.handle([source(0, ref.model_dump_json().encode())])

    [target] = github.targets
    assert (target.installation_id, target.owner, target.repo) == ("222", "jitsecurity", "execution-service")
    assert stored_attributes["installation_id"] == "222"


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("installation_id", "999"), ("owner", "someone-else"), ("original_repository", "other-repo")],
)
async def test_a_trigger_naming_another_installation_owner_or_repository_is_dead_lettered(
    attribute: str, value: str
) -> None:
    repository = FakeStore()
    event = trigger_event("tenant-a", "event-1", "asset-1", job_runner="github_actions")
    event = event.model_copy(
        update={"additional_attributes": {**event.additional_attributes, attribute: value}}
    )
    triggers = TriggerStep(repository, Assets({"asset-1": asset()}), clock)

    effects = await triggers.handle([source(0, event.model_dump_json().encode())])

    assert repository.items == {}
    assert reasons(effects) == ["asset_mismatch"]
    [letter] = [o for o in effects.outgoing if o.destination is Destination.DLQ]
    assert (
        f"additional_attributes['{attribute}'] '{value}' contradicts"
        in dict(letter.headers)["dlq.message"].decode()
    )


async def test_the_same_owner_in_another_case_is_not_a_contradiction() -> None:
    repository = FakeStore()
    event = trigger_event("tenant-a", "event-1", "asset-1", job_runner="github_actions")
    event = event.model_copy(
        update={"additional_attributes": {"owner": "JitSecurity", "installation_id": 24915845}}
    )

    await TriggerStep(repository, Assets({"asset-1": asset()}), clock).handle(
        [source(0, event.model_dump_json().encode())]
    )

    [execution] = repository.items.values()
    assert execution.additional_attributes["owner"] == "jitsecurity"


async def test_a_parked_trigger_naming_another_installation_fails_when_its_asset_comes() -> None:
    assets, now, repository = Assets(), [BASE_TIME], FakeStore()
    step = parking_step(repository, assets, now)
    triggers = TriggerStep(repository, assets, clock)
    event = trigger_event("tenant-a", "event-1", "asset-1", job_runner="github_actions")
    attributes = {**event.additional_attributes, "installation_id": "999"}
    event = event.model_copy(update={"additional_attributes": attributes})
    honest = trigger_event("tenant-a", "event-2", "asset-1", job_runner="github_actions")
    await park(
        step, triggers, [source(n, e.model_dump_json().encode()) for n, e in enumerate([event, honest])]
    )

    assets["asset-1"] = asset()
    [wake_up] = sent(step.wake_ups(), Destination.WAITING)
    _, effects = await step.decide(WakeUp.model_validate(wake_up))

    assert reasons(effects) == ["asset_mismatch"]
    assert [r["jit_event_id"] for r in sent(effects, Destination.ALLOCATE)] == ["event-2"]
    statuses = {
        e.jit_event_id: (e.status, e.additional_attributes["installation_id"])
        for e in repository.items.values()
    }
    assert statuses == {"event-1": (S.FAILED, "999"), "event-2": (S.PENDING, "24915845")}
