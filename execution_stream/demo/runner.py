"""The demo's stand-in runner: it takes the demo's own jobs, from `runner-jobs` and from the local
GitHub's record of its dispatches, and reports on `execution-status` as a runner does: `running`,
then after a while `completed`, or `failed` for the jobs the demo plans to fail."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from execution_stream.adapters.kafka_topic_reader import KafkaTopicReader
from execution_stream.demo.seed import FAILURE, DemoJob
from execution_stream.dev_stack.local_github import DISPATCHES_PATH
from execution_stream.domain.enrichment import DispatchedJob
from execution_stream.domain.models import ExecutionStatus, ExecutionStatusUpdate

GITHUB_POLL_SECONDS = 0.5
GITHUB_TIMEOUT = aiohttp.ClientTimeout(total=5)
# The workflow inputs that carry a job's ids (domain/enrichment.py, GITHUB_INPUT_NAMES).
_ID_INPUTS = ("tenant_id", "jit_event_id", "execution_id")


@dataclass(frozen=True)
class JobRef:
    tenant_id: str
    jit_event_id: str
    execution_id: str


def job_of_runner_record(value: bytes | None) -> JobRef | None:
    """The ids of a job on `runner-jobs`; None for a record that is not one."""
    try:
        job = DispatchedJob.model_validate_json(value or b"")
    except ValidationError:
        return None
    return JobRef(job.tenant_id, job.jit_event_id, job.execution_id)


def jobs_of_dispatches(dispatches: object) -> list[JobRef]:
    """The ids in the inputs of the dispatches the local GitHub lists (`RecordedDispatch.as_json`)."""
    found = []
    for dispatch in dispatches if isinstance(dispatches, list) else []:
        inputs = dispatch.get("inputs") if isinstance(dispatch, dict) else None
        if isinstance(inputs, dict) and all(isinstance(inputs.get(name), str) for name in _ID_INPUTS):
            found.append(JobRef(*(inputs[name] for name in _ID_INPUTS)))
    return found


def status_report(
    job: JobRef, status: ExecutionStatus, at: datetime, error: str | None = None
) -> ExecutionStatusUpdate:
    return ExecutionStatusUpdate(
        tenant_id=job.tenant_id,
        jit_event_id=job.jit_event_id,
        execution_id=job.execution_id,
        status=status,
        error=error,
        at=at,
    )


def end_of(planned: DemoJob) -> tuple[ExecutionStatus, str | None]:
    return (ExecutionStatus.FAILED, FAILURE) if planned.fails else (ExecutionStatus.COMPLETED, None)


@dataclass
class StandInRunner:
    """Runs until cancelled; each planned job is taken once, whichever way it came."""

    plan: Mapping[str, DemoJob]  # by jit_event_id
    producer: AIOKafkaProducer
    status_topic: str
    jobs: KafkaTopicReader
    github_api_url: str | None
    work_seconds: float
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __post_init__(self) -> None:
        self._taken: set[str] = set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow_runner_jobs(group))
            if self.github_api_url is not None:
                group.create_task(self._poll_github(group, self.github_api_url))

    def _take(self, group: asyncio.TaskGroup, job: JobRef) -> None:
        planned = self.plan.get(job.jit_event_id)
        if planned is None or job.execution_id in self._taken:
            return
        self._taken.add(job.execution_id)
        group.create_task(self._work(job, planned))

    async def _work(self, job: JobRef, planned: DemoJob) -> None:
        await self._report(status_report(job, ExecutionStatus.RUNNING, self.now()))
        await asyncio.sleep(self.work_seconds)
        status, error = end_of(planned)
        await self._report(status_report(job, status, self.now(), error))

    async def _report(self, update: ExecutionStatusUpdate) -> None:
        value, key = update.model_dump_json().encode(), update.tenant_id.encode()
        await self.producer.send_and_wait(self.status_topic, value, key=key)

    async def _follow_runner_jobs(self, group: asyncio.TaskGroup) -> None:
        while True:
            for records in (await self.jobs.poll(timeout_ms=500)).values():
                for record in records:
                    job = job_of_runner_record(record.value)
                    if job is not None:
                        self._take(group, job)

    async def _poll_github(self, group: asyncio.TaskGroup, github_api_url: str) -> None:
        url = github_api_url.rstrip("/") + DISPATCHES_PATH
        async with aiohttp.ClientSession(timeout=GITHUB_TIMEOUT) as session:
            while True:
                for job in await _dispatched(session, url):
                    self._take(group, job)
                await asyncio.sleep(GITHUB_POLL_SECONDS)


async def _dispatched(session: aiohttp.ClientSession, url: str) -> list[JobRef]:
    try:
        async with session.get(url) as response:
            response.raise_for_status()
            return jobs_of_dispatches(await response.json())
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        # The local GitHub went away (its `dev` stopped?): say so, and keep asking.
        print(f"demo: cannot list the dispatches at {url}: {error!r}", file=sys.stderr, flush=True)
        return []
