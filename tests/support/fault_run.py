"""One fault test's run: the pipeline, its traffic and runners, and the ledger that accounts for it.

The ledger (`FaultLedger`) counts, after the run has settled:
- sent: triggers sent (each distinct; the workload may resend some, the service must not care);
- executions: items in DynamoDB, and `lost` (a trigger without its execution) and `duplicated`
  (items beyond one per trigger, or items no trigger asked for);
- dispatches: jobs on `runner-jobs` plus dispatches the GitHub stand-in accepted, and
  `dispatch_duplicates` (the same execution sent to its runner more than once: inherent only to a
  worker killed between the hand-over and the `dispatched` mark, see README "Delivery");
- dlq: records on the dead-letter topic, checked against the records meant to go there;
- status_mismatches: stored statuses that are not what the runners reported last;
- slot_mismatches: tenants whose slot count differs from their executions holding a slot;
- events_missing: executions whose current status was never published on `execution-events`;
- recovery_seconds: from the fault's end to the first job dispatched afterwards, and to the
  ledger complete.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.settings import Settings
from tests.support.ledger import executions_of, holding_per_tenant, slot_holders
from tests.support.pipeline import GITHUB_APP_ID, Pipeline, TopicReader, WorkerProcess, produce
from tests.support.workload import PlannedTrigger, SimulatedRunners, Workload, asset_records

# faust reads these from the environment. A worker killed with SIGKILL stays a member of its group
# until its session times out, and nobody consumes its partitions until then: faust's 60 s default
# would make each kill a minute of silence. Operators tune the same knobs. FAULTS_DEVLOG=1 in the
# tests' environment adds faust's developer log to the worker logs (seeks, dropped records, commits).
FAST_GROUP_ENVIRONMENT = {
    "BROKER_SESSION_TIMEOUT": "10",
    "BROKER_HEARTBEAT_INTERVAL": "1",
    "BROKER_REBALANCE_TIMEOUT": "20",
    **({"DEVLOG": "1"} if os.environ.get("FAULTS_DEVLOG") else {}),
}


def fault_settings(base: Settings, unique: str) -> Settings:
    """`base` with a consumer group of the test's own and short asset waits."""
    return base.model_copy(
        update={
            "consumer_group": f"execution-stream-faults-{unique}",
            "github_app_id": GITHUB_APP_ID,
            "asset_wait_seconds": 5.0,
            "asset_wait_check_seconds": 0.5,
        }
    )


@dataclass
class FaultWorker(WorkerProcess):
    """A worker process with faust's group timeouts shortened (FAST_GROUP_ENVIRONMENT)."""

    def environment(self) -> dict[str, str]:
        return {**os.environ, **FAST_GROUP_ENVIRONMENT, **self.settings.to_environment()}


@dataclass(frozen=True)
class FaultLedger:
    name: str
    sent: int
    executions: int
    lost: int
    duplicated: int
    dispatches: int
    runner_jobs: int
    github_dispatches: int
    dispatch_duplicates: int
    dlq: int
    status_mismatches: int
    slot_mismatches: int
    events_missing: int
    first_dispatch_after_fault: float | None
    recovery_seconds: float | None
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        return (
            f"LEDGER {self.name}: sent={self.sent} executions={self.executions} "
            f"dispatches={self.dispatches} (runner-jobs={self.runner_jobs} github={self.github_dispatches}) "
            f"dlq={self.dlq} lost={self.lost} duplicated={self.duplicated} "
            f"dispatch_duplicates={self.dispatch_duplicates} status_mismatches={self.status_mismatches} "
            f"slot_mismatches={self.slot_mismatches} events_missing={self.events_missing} "
            f"first_dispatch_after_fault_s={seconds(self.first_dispatch_after_fault)} "
            f"recovery_s={seconds(self.recovery_seconds)}"
        )


@dataclass
class FaultRun:
    """Drives one fault test: assets, traffic, simulated runners, and the final accounting."""

    name: str
    pipeline: Pipeline
    triggers: list[PlannedTrigger]
    chunk: int = 10
    pause: float = 0.25
    worker_overrides: dict[str, Any] = field(default_factory=dict)
    workload: Workload = field(init=False)
    runners: SimulatedRunners = field(init=False)
    fault_ended_at: float | None = None
    _traffic: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.workload = Workload(self.settings, self.triggers, chunk=self.chunk, pause=self.pause)
        self.runners = SimulatedRunners(self.settings, self.pipeline.github, self.triggers)

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings

    @property
    def tenants(self) -> list[str]:
        return sorted({t.tenant_id for t in self.triggers})

    async def start(self) -> None:
        """Assets in, runners listening, one worker; traffic is started by `start_traffic`."""
        await produce(self.settings, self.settings.topic_assets, asset_records(self.triggers))
        await self.runners.start()
        self.start_worker()

    def start_worker(self, **overrides: Any) -> FaultWorker:
        changes = {"default_concurrency_limit": 1000, **self.worker_overrides, **overrides}
        if "worker_web_port" in Settings.model_fields:  # each worker process serves its own port
            changes.setdefault("worker_web_port", free_loopback_port())
        settings = self.settings.model_copy(update=changes)
        workers = self.pipeline.workers
        worker = FaultWorker(settings, self.pipeline.log_dir / f"worker-{len(workers)}.log")
        workers.append(worker)
        worker.start()
        return worker

    def start_traffic(self) -> asyncio.Task[None]:
        self._traffic = asyncio.create_task(self.workload.run())
        return self._traffic

    async def traffic_done(self, seconds: float = 240) -> None:
        assert self._traffic is not None
        await asyncio.wait_for(self._traffic, seconds)

    def fault_ended(self) -> None:
        self.fault_ended_at = time.monotonic()

    async def stop(self) -> None:
        if self._traffic is not None and not self._traffic.done():
            self._traffic.cancel()
            await asyncio.gather(self._traffic, return_exceptions=True)
        await self.runners.stop()

    async def stored(self) -> list[Execution]:
        return await executions_of(self.pipeline.repository, self.tenants)

    async def wait_until_stored(self, count: int, seconds: float = 60) -> None:
        async def enough() -> bool:
            return len(await self.stored()) >= count

        await self.pipeline.eventually(enough, f"{count} executions stored", seconds)

    async def settle(self, seconds: float = 180, expected_dlq: int = 0) -> FaultLedger:
        """Waits until every trigger is an execution in its final status, then accounts for the run."""
        expected = {t.execution_id for t in self.triggers}

        async def settled() -> bool:
            stored = await self.stored()
            by_id = {e.execution_id: e for e in stored}
            if not expected <= set(by_id) or not expected <= self.runners.jobs_seen():
                return False
            if self.runners.outstanding() or time.monotonic() - self.runners.last_report_at < 2:
                return False
            if not all(by_id[i].status is self.runners.expected_status(i) for i in expected):
                return False
            # An event follows its stored change: wait for it as well (a lost one times out here).
            published = self.runners.published_statuses()
            return all(e.status.value in published.get(i, set()) for i, e in by_id.items())

        timed_out: AssertionError | None = None
        try:
            await self.pipeline.eventually(settled, f"{self.name}: every trigger settled", seconds)
        except AssertionError as error:
            if "a worker exited" in str(error):
                raise
            timed_out = error  # the ledger says what is missing; it is printed before failing
        settled_at = time.monotonic()
        await self.runners.halt()
        await self.runners.drain()
        await self.stop()
        dlq = await read_topic(
            self.settings, self.settings.topic_execution_dlq, 0 if timed_out else expected_dlq
        )
        ledger = await self.ledger(settled_at, dlq)
        if timed_out is not None:
            print(ledger.line())
            print(ledger.details)
            raise AssertionError(f"{timed_out}\n{ledger.line()}\n{ledger.details}")
        return ledger

    async def ledger(self, settled_at: float, dlq: list[ConsumerRecord[bytes, bytes]]) -> FaultLedger:
        stored = await self.stored()
        by_id: dict[str, list[Execution]] = {}
        for execution in stored:
            by_id.setdefault(execution.execution_id, []).append(execution)
        expected = {t.execution_id for t in self.triggers}
        topic_fed = Counter(job["execution_id"] for job in self.runners.jobs)
        github = Counter(d.inputs["execution_id"] for d in self.pipeline.github.dispatches)
        dispatched = topic_fed + github
        events = self.runners.published_statuses()
        current = {i: found[0] for i, found in by_id.items()}
        mismatched = sorted(
            i for i in expected if i in current and current[i].status is not self.runners.expected_status(i)
        )
        missing_events = sorted(i for i, e in current.items() if e.status.value not in events.get(i, set()))
        holders = await slot_holders(self.settings)
        held = {tenant: sum(runners.values()) for tenant, runners in holders.items()}
        holding = holding_per_tenant(current.values())
        slot_mismatches = {
            t: (held.get(t, 0), holding.get(t, 0))
            for t in set(held) | set(holding)
            if held.get(t, 0) != holding.get(t, 0)
        }
        first_dispatch = self.runners.first_job_after(self.fault_ended_at)
        return FaultLedger(
            name=self.name,
            sent=len(self.triggers),
            executions=len(stored),
            lost=len(expected - set(by_id)),
            duplicated=(len(stored) - len(by_id)) + len(set(by_id) - expected),
            dispatches=sum(dispatched.values()),
            runner_jobs=sum(topic_fed.values()),
            github_dispatches=sum(github.values()),
            dispatch_duplicates=sum(n - 1 for n in dispatched.values() if n > 1),
            dlq=len(dlq),
            status_mismatches=len(mismatched),
            slot_mismatches=len(slot_mismatches),
            events_missing=len(missing_events),
            first_dispatch_after_fault=first_dispatch,
            recovery_seconds=None if self.fault_ended_at is None else settled_at - self.fault_ended_at,
            details={
                "statuses": Counter(e.status.value for e in current.values()),
                "mismatched": mismatched[:5],
                "missing_events": [(i, current[i].status.value) for i in missing_events[:5]],
                "slot_mismatches": slot_mismatches,
                "twice_dispatched": sorted(i for i, n in dispatched.items() if n > 1)[:5],
                "undispatched": sorted(expected - set(dispatched))[:5],
                "pending": sorted(e.jit_event_id for e in current.values() if e.status.value == "pending")[
                    :5
                ],
                "lost": sorted(t.jit_event_id for t in self.triggers if t.execution_id not in by_id)[:5],
                "dlq_reasons": Counter(headers_of(r).get("dlq.reason") for r in dlq),
                "resends": self.workload.resends,
            },
        )


async def group_members(settings: Settings) -> int:
    """How many members the worker's consumer group has now (0 when it has none or is unknown)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([settings.consumer_group])
    finally:
        await admin.close()
    groups = [group for response in described for group in response.groups]
    return sum(len(group[5]) for group in groups if group[1] == settings.consumer_group)


def headers_of(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {name: value.decode(errors="replace") for name, value in record.headers}


async def read_topic(settings: Settings, topic: str, at_least: int, seconds: float = 60) -> list[Any]:
    """Every record of `topic`, once at least `at_least` are there or `seconds` have passed (the
    caller compares what it got with what it expected)."""
    reader = TopicReader(settings, topic)
    await reader.start()
    try:
        deadline = time.monotonic() + seconds
        while len(reader.records) < at_least and time.monotonic() < deadline:
            await reader.poll()
        for _ in range(5):
            await reader.poll()
    finally:
        await reader.stop()
    return list(reader.records)


def assert_no_loss_or_duplication(ledger: FaultLedger, dispatch_duplicates_allowed: bool = False) -> None:
    """What every fault test asserts; the details name examples when it fails.

    Events included: a worker killed between storing a change and publishing its event publishes
    it when the record is replayed.
    """
    assert (ledger.lost, ledger.duplicated) == (0, 0), ledger.details
    assert ledger.executions == ledger.sent, ledger.details
    assert ledger.status_mismatches == 0, ledger.details
    assert ledger.slot_mismatches == 0, ledger.details
    assert not ledger.details["undispatched"], ledger.details
    if not dispatch_duplicates_allowed:
        assert ledger.dispatch_duplicates == 0, ledger.details
        assert ledger.dispatches == ledger.sent, ledger.details
    assert ledger.details["statuses"].get(ExecutionStatus.PENDING.value, 0) == 0, ledger.details
    assert ledger.events_missing == 0, ledger.details
