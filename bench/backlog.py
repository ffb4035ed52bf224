"""The backlog phase: one tenant with thousands waiting, measured three ways in one run.

1. accept: the real worker (limit 10) fed 10,000 triggers of one tenant at once; the time until
   every one is stored `pending` (its event on execution-events), against D in the same run.
2. admission cost: in this process, the allocator's decision plus its table writes for one release
   that admits the next execution, at backlogs of 100, 1,000 and 10,000 (flat = O(1)), with the
   bytes each admission writes to the changelog.
3. memory: what the table holds per pending (queued) execution and per parked trigger, by
   tracemalloc over the same dict a faust memory-store table keeps.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaProducer

from bench.job_watch import JobWatch
from bench.observe import PeakRss
from bench.pipeline_run import PHASE_SECONDS, WARM_UP_SECONDS, pipeline_settings, stop_worker
from execution_stream.domain import commits
from execution_stream.domain.allocation import Allocator, Memory
from execution_stream.pipeline.messages import ParkedTrigger
from execution_stream.pipeline.parked_triggers import ParkedTriggerStep
from execution_stream.provisioning import provision
from execution_stream.settings import Settings
from tests.support.ledger import asset_record, trigger_record
from tests.support.pipeline import WorkerProcess, produce

BACKLOGS = (100, 1_000, 10_000)
LIMIT = 10
ADMISSIONS_MEASURED = 100
ROUNDS = 5


@dataclass(frozen=True)
class AdmissionCost:
    backlog: int
    microseconds: float
    changelog_bytes: float


@dataclass(frozen=True)
class Backlog:
    triggers: int
    accept_seconds: float
    accept_per_second: float
    admissions: list[AdmissionCost]
    bytes_per_pending: float
    bytes_per_parked: float
    worker_peak_rss_mib: float

    @property
    def flatness(self) -> float:
        """Cost of an admission at the largest backlog over the smallest: 1.0 is flat."""
        return self.admissions[-1].microseconds / self.admissions[0].microseconds


def admission_cost(backlog: int) -> AdmissionCost:
    timings: list[float] = []
    written: list[int] = []
    for _ in range(ROUNDS):
        table: dict[str, Any] = {}
        allocator = Allocator(table, lambda tenant, runner: LIMIT, Memory(3600.0, 10_000))
        for n in range(backlog + LIMIT):
            commits.apply(table, allocator.request("t", f"e{n}", "event", "jit", now=0.0).writes)
        for n in range(ADMISSIONS_MEASURED):
            started = time.perf_counter()
            result = allocator.release("t", f"e{n}", "jit", now=1.0)
            commits.apply(table, result.writes)
            timings.append(time.perf_counter() - started)
            written.append(sum(len(w.key) + len(json.dumps(w.value)) for w in result.writes))
    return AdmissionCost(backlog, statistics.median(timings) * 1e6, statistics.mean(written))


def bytes_per_pending(count: int = 10_000) -> float:
    table: dict[str, Any] = {}
    allocator = Allocator(table, lambda tenant, runner: LIMIT, Memory(3600.0, 10_000))
    ids = [uuid.uuid4().hex for _ in range(count)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for execution_id in ids:
        commits.apply(table, allocator.request("tenant-a", execution_id, "event-1", "jit", now=0.0).writes)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / count


def bytes_per_parked(count: int = 10_000) -> float:
    return asyncio.run(_bytes_per_parked(count))


async def _bytes_per_parked(count: int) -> float:
    step = ParkedTriggerStep({}, None, None, 300.0, None)  # type: ignore[arg-type]  # parking needs neither
    parked = [
        ParkedTrigger(
            tenant_id="tenant-a",
            jit_event_id=f"event-{n}",
            execution_id=uuid.uuid4().hex,
            asset_id="asset-1",
            first_seen_at=1.0,
            source={"topic": "trigger-execution", "partition": 3, "offset": n, "key": "tenant-a"},
        )
        for n in range(count)
    ]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for reference in parked:
        writes, _ = await step.decide(reference)
        step.commit(writes)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / count


async def accept(base: Settings, count: int, log_dir: Path) -> tuple[float, float]:
    """Seconds until `count` triggers of one tenant are all stored; the worker's peak RSS (MiB)."""
    settings = pipeline_settings(base).model_copy(update={"default_concurrency_limit": LIMIT})
    await provision(settings)
    tenant = "bench-backlog-tenant"
    await produce(settings, settings.topic_assets, [asset_record(tenant, f"asset-{tenant}")])
    worker = WorkerProcess(settings, log_dir / "worker-backlog.log")
    worker.start()
    assert worker.process is not None
    rss = PeakRss(psutil.Process(worker.process.pid))
    rss.start()
    watch = JobWatch(
        settings.kafka_bootstrap_servers, settings.topic_runner_jobs, settings.topic_execution_events
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)

    def alive() -> None:
        if worker.process is not None and worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited\n{worker.log_tail()}")

    try:
        await watch.start()
        await producer.start()
        warm_up = trigger_record(tenant, -1)
        await producer.send_and_wait(settings.topic_trigger_execution, warm_up[1], key=tenant.encode())
        await watch.wait_for([(tenant, "event--1")], _created, "backlog: warm-up", WARM_UP_SECONDS, alive)
        records = [trigger_record(tenant, n) for n in range(count)]
        started = time.time()
        delivered = [
            await producer.send(settings.topic_trigger_execution, v, key=k.encode()) for k, v in records
        ]
        await asyncio.gather(*delivered)
        keys = [(tenant, f"event-{n}") for n in range(count)]
        seen = await watch.wait_for(keys, _created, "backlog: accept", PHASE_SECONDS, alive)
        seconds = max(s.timestamp_ms for s in seen) / 1000 - started
    finally:
        await rss.stop()
        await producer.stop()
        await watch.stop()
        await asyncio.to_thread(stop_worker, worker)
    return seconds, rss.peak_mib


async def backlog_phase(base: Settings, count: int, log_dir: Path) -> Backlog:
    seconds, peak = await accept(base, count, log_dir)
    return Backlog(
        triggers=count,
        accept_seconds=seconds,
        accept_per_second=count / seconds,
        admissions=[admission_cost(backlog) for backlog in BACKLOGS],
        bytes_per_pending=bytes_per_pending(),
        bytes_per_parked=await _bytes_per_parked(10_000),
        worker_peak_rss_mib=peak,
    )


def _created(watch: JobWatch) -> Any:
    return watch.created
