"""Traffic for the fault tests: a steady stream of triggers, and runners that report back.

`Workload` names every trigger it will send (several tenants, mixed runners: most `jit_runner`,
fed through `runner-jobs`, some `github_actions`, dispatched to the GitHub stand-in) and sends them
in small chunks at a steady pace, resending a chunk the broker did not take (a producer's
at-least-once: the service must make one execution of a trigger sent twice).

`SimulatedRunners` play the runners: they watch `runner-jobs`, the stand-in's dispatches and
`execution-events`, and report on `execution-status` for a fixed share of the jobs (running, then
completed or failed; some only running; the rest never report). A runner reports only once it has
seen the job's `dispatched` event: a report that overtakes the service's own `dispatched` mark is
refused by the lifecycle (pending -> running is not a transition), which would make the final status
depend on timing rather than on the fault under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from execution_stream.adapters.kafka_topic_reader import READ_UNCOMMITTED, KafkaTopicReader
from execution_stream.dev_stack.github_standin import GithubStandin
from execution_stream.domain.identity import execution_id_for
from execution_stream.domain.models import ExecutionStatus, TriggerEvent
from execution_stream.settings import Settings
from tests.support.factories import asset, trigger_event
from tests.support.pipeline import as_json

GITHUB = "github_actions"
TOPIC_FED = "jit_runner"
GITHUB_INSTALLATION = "24915845"


@dataclass(frozen=True)
class PlannedTrigger:
    number: int
    tenant_id: str
    jit_event_id: str
    job_runner: str
    execution_id: str
    record: tuple[str, bytes]

    @classmethod
    def of(cls, number: int, event: TriggerEvent, value: bytes | None = None) -> PlannedTrigger:
        """The trigger `event` sent as `value` (by default its JSON), keyed by its tenant."""
        value = value if value is not None else as_json(event.model_dump(mode="json"))
        return cls(
            number,
            event.tenant_id,
            event.jit_event_id,
            event.job_runner,
            execution_id_for(event),
            (event.tenant_id, value),
        )

    def planned_reports(self) -> list[ExecutionStatus]:
        """What the runner of this job reports, in order, once it is dispatched."""
        if self.number % 3 == 0:
            return [ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED]
        if self.number % 9 == 2:
            return [ExecutionStatus.FAILED]
        if self.number % 3 == 1:
            return [ExecutionStatus.RUNNING]
        return []


def plan_triggers(count: int, tenants: int = 4, github_every: int = 5) -> list[PlannedTrigger]:
    planned = []
    for number in range(count):
        tenant = f"tenant-{number % tenants}"
        runner = GITHUB if number % github_every == 0 else TOPIC_FED
        # Each tenant's repository, as its asset names it (see asset_records).
        attributes: dict[str, Any] = {
            "owner": f"acme-{number % tenants}",
            "original_repository": f"repo-{number % tenants}",
        }
        if runner == GITHUB:
            attributes |= {"installation_id": GITHUB_INSTALLATION, "branch": "main"}
        event = trigger_event(
            tenant, f"event-{number}", f"asset-{tenant}", job_runner=runner, additional_attributes=attributes
        )
        planned.append(PlannedTrigger.of(number, event))
    return planned


def asset_records(triggers: Iterable[PlannedTrigger]) -> list[tuple[str, bytes]]:
    """Each tenant's asset, naming the organisation and repository its GitHub triggers name (the
    service refuses a trigger that contradicts its asset)."""
    named: dict[str, dict[str, str]] = {}
    for trigger in triggers:
        attributes = json.loads(trigger.record[1])["additional_attributes"]
        if "owner" in attributes and "original_repository" in attributes:
            target = {"owner": attributes["owner"], "asset_name": attributes["original_repository"]}
            named.setdefault(trigger.tenant_id, target)
    records = []
    for tenant, target in sorted(named.items()):
        document = asset(tenant, f"asset-{tenant}").model_copy(update=target)
        records.append((document.asset_id, as_json(document.model_dump(mode="json"))))
    return records


@dataclass
class Workload:
    """Sends `triggers` on the trigger topic, `chunk` at a time every `pause` seconds."""

    settings: Settings
    triggers: list[PlannedTrigger]
    chunk: int = 10
    pause: float = 0.25
    extra: list[tuple[int, tuple[str, bytes | None]]] = field(default_factory=list)  # (after chunk n, record)
    sent_chunks: int = 0
    resends: int = 0
    finished_at: float | None = None

    @property
    def sent(self) -> int:
        return len(self.triggers)

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            acks="all",
            request_timeout_ms=15000,
            max_request_size=4 * 1024 * 1024,
        )
        await producer.start()
        try:
            records: list[tuple[str, bytes | None]] = [t.record for t in self.triggers]
            for number, start in enumerate(range(0, len(records), self.chunk)):
                chunk = records[start : start + self.chunk]
                chunk += [record for after, record in self.extra if after == number]
                await self._send_until_taken(producer, chunk)
                self.sent_chunks += 1
                await asyncio.sleep(self.pause)
            self.finished_at = time.monotonic()
            unsent = [after for after, _ in self.extra if after >= self.sent_chunks]
            assert not unsent, f"extra records planned after chunks {unsent} that were never sent"
        finally:
            await producer.stop()

    async def _send_until_taken(
        self, producer: AIOKafkaProducer, chunk: list[tuple[str, bytes | None]]
    ) -> None:
        deadline = time.monotonic() + 180
        while True:
            try:
                futures = [
                    await producer.send(self.settings.topic_trigger_execution, key=k.encode(), value=v)
                    for k, v in chunk
                ]
                await asyncio.gather(*futures)
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                self.resends += 1
                await asyncio.sleep(1)


@dataclass
class SimulatedRunners:
    settings: Settings
    github: GithubStandin
    triggers: list[PlannedTrigger]
    reported: dict[str, list[ExecutionStatus]] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)  # every runner-jobs record
    events: list[dict[str, Any]] = field(default_factory=list)  # every execution-events record
    last_report_at: float = 0.0
    job_arrivals: list[float] = field(default_factory=list)  # when each newly seen job was first seen
    _reader: KafkaTopicReader | None = None
    _producer: AIOKafkaProducer | None = None
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._by_id = {t.execution_id: t for t in self.triggers}

    @property
    def dispatched_events(self) -> set[str]:
        return {e["execution_id"] for e in self.events if e["status"] == ExecutionStatus.DISPATCHED}

    def published_statuses(self) -> dict[str, set[str]]:
        """The statuses each execution's events on `execution-events` announced so far."""
        published: dict[str, set[str]] = {}
        for event in self.events:
            published.setdefault(event["execution_id"], set()).add(event["status"])
        return published

    def jobs_seen(self) -> set[str]:
        topic_fed = {job["execution_id"] for job in self.jobs}
        return topic_fed | {d.inputs["execution_id"] for d in self.github.dispatches}

    def first_job_after(self, moment: float | None) -> float | None:
        """Seconds from `moment` to the first job a runner received after it."""
        if moment is None:
            return None
        later = [arrival for arrival in self.job_arrivals if arrival > moment]
        return min(later) - moment if later else None

    def expected_status(self, execution_id: str) -> ExecutionStatus:
        reports = self.reported.get(execution_id)
        return reports[-1] if reports else ExecutionStatus.DISPATCHED

    def outstanding(self) -> set[str]:
        """Jobs a runner still has to report on."""
        ready = self.jobs_seen() & self.dispatched_events
        return {i for i in ready if i in self._by_id and i not in self.reported} - self._silent()

    def _silent(self) -> set[str]:
        return {i for i, t in self._by_id.items() if not t.planned_reports()}

    async def start(self) -> None:
        topics = [self.settings.topic_runner_jobs, self.settings.topic_execution_events]
        self._reader = KafkaTopicReader(
            self.settings.kafka_bootstrap_servers, topics, isolation_level=READ_UNCOMMITTED
        )
        self._producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers, acks="all")
        await self._reader.start()
        await self._producer.start()
        self._task = asyncio.create_task(self._run())

    async def halt(self) -> None:
        """Stops reporting; the topics can still be read (`drain`)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def stop(self) -> None:
        await self.halt()
        for client in (self._reader, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._reader, self._producer = None, None

    async def drain(self, rounds: int = 10) -> None:
        """Reads what is left on the topics (after the run loop stopped)."""
        for _ in range(rounds):
            await self._poll()

    async def _run(self) -> None:
        while True:
            try:
                await self._poll()
                await self._report()
            except asyncio.CancelledError:
                raise
            except KafkaError:
                await asyncio.sleep(0.5)  # the broker is away (a fault under test): try again

    async def _poll(self) -> None:
        assert self._reader is not None
        batches = await self._reader.poll(timeout_ms=200)
        for partition, records in batches.items():
            target = self.jobs if partition.topic == self.settings.topic_runner_jobs else self.events
            target.extend(json.loads(r.value) for r in records if r.value)
        seen = len(self.jobs_seen())
        now = time.monotonic()
        self.job_arrivals.extend([now] * (seen - len(self.job_arrivals)))

    async def _report(self) -> None:
        assert self._producer is not None
        outstanding = sorted(self.outstanding())
        if not outstanding:
            return
        futures = []
        for execution_id in outstanding:
            planned = self._by_id[execution_id]
            for status in planned.planned_reports():
                update = {
                    "tenant_id": planned.tenant_id,
                    "jit_event_id": planned.jit_event_id,
                    "execution_id": execution_id,
                    "status": status.value,
                    "error": "exit code 1" if status is ExecutionStatus.FAILED else None,
                    "has_findings": status is ExecutionStatus.COMPLETED,
                    "at": datetime.now(UTC).isoformat(),
                }
                futures.append(
                    await self._producer.send(
                        self.settings.topic_execution_status,
                        key=planned.tenant_id.encode(),
                        value=json.dumps(update).encode(),
                    )
                )
        await asyncio.gather(*futures)
        for execution_id in outstanding:
            self.reported[execution_id] = self._by_id[execution_id].planned_reports()
        self.last_report_at = time.monotonic()
