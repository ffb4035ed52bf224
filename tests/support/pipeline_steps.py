"""Helpers of the pipeline step tests: records in, decoded records out, the steps built on
in-memory stand-ins of our own ports (GitHub and the runner-jobs topic record what they get)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from execution_stream.domain.allocation import Memory
from execution_stream.domain.dispatch import (
    CancelOutcome,
    DispatchRefusedError,
    DispatchRetryPolicy,
    GithubRun,
    RunDetails,
)
from execution_stream.domain.enrichment import DispatchedJob, GithubWorkflowTarget
from execution_stream.domain.identity import execution_id_for
from execution_stream.domain.models import Asset, Execution, ExecutionStatus
from execution_stream.domain.store import ExecutionKey
from execution_stream.domain.trace import TraceContext
from execution_stream.pipeline.allocations import AllocationStep, Limits
from execution_stream.pipeline.dispatches import DispatchStep
from execution_stream.pipeline.messages import Destination, Effects, SourceRecord, waiting_message
from execution_stream.pipeline.parked_triggers import ParkedTriggerStep
from execution_stream.pipeline.ports import ExecutionStore, NoQueueView
from execution_stream.pipeline.triggers import TriggerStep
from tests.support.factories import BASE_TIME, asset, trigger_event

S = ExecutionStatus
RETRY_POLICY = DispatchRetryPolicy(first_seconds=5.0, max_seconds=300.0)


class Assets(dict[str, Asset]):
    pass


class RecordingGithub:
    """GitHub's two calls, recorded: each dispatch creates a run numbered from 1."""

    def __init__(self, refuse: bool = False) -> None:
        self.targets: list[GithubWorkflowTarget] = []
        self.cancels: list[GithubRun] = []
        self.refuse = refuse

    async def dispatch(self, target: GithubWorkflowTarget) -> RunDetails | None:
        if self.refuse:
            raise DispatchRefusedError(422, "Unexpected inputs provided")
        self.targets.append(target)
        run_id = len(self.targets)
        return RunDetails(run_id, f"https://github.com/{target.owner}/{target.repo}/actions/runs/{run_id}")

    async def cancel_run(self, run: GithubRun) -> CancelOutcome:
        self.cancels.append(run)
        return CancelOutcome.REQUESTED


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


def parking_step(repository: ExecutionStore, assets: Assets, now: list[datetime]) -> ParkedTriggerStep:
    return ParkedTriggerStep({}, repository, assets, 60.0, lambda: now[0], batch=2)


async def park(step: ParkedTriggerStep, triggers: TriggerStep, records: list[SourceRecord]) -> None:
    for record in records:
        for message in sent(await triggers.handle([record]), Destination.WAITING):
            writes, effects = await step.decide(waiting_message.validate_python(message))
            step.commit(writes)
            assert effects.outgoing == []


def allocation_step(limit: int) -> AllocationStep:
    limits = Limits(limit, {"tenant-big": 100})
    return AllocationStep({}, limits, Memory(3600.0, 100), NoQueueView(), clock)


def handled(step: AllocationStep, message: Any) -> Effects:
    result, effects = step.decide(message)
    step.commit(result)
    return effects


async def stored_pending(repository: ExecutionStore, runner: str, **overrides: Any) -> Execution:
    """The execution of trigger `event-1` (asset known, for `runner`), stored by the trigger step."""
    event = trigger_event("tenant-a", "event-1", "asset-1", job_runner=runner, **overrides)
    triggers = TriggerStep(repository, Assets({"asset-1": asset()}), clock)
    await triggers.handle([source(1, event.model_dump_json().encode())])
    key = ExecutionKey(event.tenant_id, event.jit_event_id, execution_id_for(event))
    execution = await repository.get(key)
    assert execution is not None, "the trigger step stored no execution"
    return execution


def dispatch_step(
    repository: ExecutionStore, github: RecordingGithub, jobs: RecordingRunnerJobs
) -> DispatchStep:
    return DispatchStep(repository, github, jobs, "execution-status", 600, RETRY_POLICY, clock)
