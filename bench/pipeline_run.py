"""P: the real worker process fed N triggers, from the first produce to the N-th job on runner-jobs.

Assets are loaded first and one warm-up trigger per tenant is dispatched before the clock starts,
so the worker has joined its group, read the assets and opened its connections. Then:

1. throughput: N triggers produced at once; P = N / (timestamp of the last new job on runner-jobs
   minus the time of the first produce).
2. latency: M more triggers produced at a fixed pace (by default half of P), each stamped with its
   produce time; latency = the job's runner-jobs record timestamp minus that time.

The allocation limit is set far above N, so no execution waits for a slot.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaProducer

from bench.job_watch import JobWatch, Key, Seen
from bench.observe import OTHERS, CpuShare, PeakRss, cpu_seconds, served_requests, stack_processes
from bench.profiling import Profiler
from execution_stream.provisioning import provision
from execution_stream.settings import Settings
from tests.support.ledger import asset_record, trigger_record
from tests.support.pipeline import WorkerProcess, produce

UNLIMITED = 1_000_000
WARM_UP_FIRST_NUMBER = 10_000_000
WARM_UP_SECONDS = 180.0
PHASE_SECONDS = 900.0


@dataclass(frozen=True)
class Latency:
    rate_per_second: float
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    # Of the same triggers, produce to the `pending` event: the trigger step's share.
    stored_p50_ms: float
    stored_p95_ms: float
    # CPU cores other processes of the machine used during the phase.
    others_cores: float


@dataclass(frozen=True)
class Throughput:
    seconds: float
    per_second: float
    # To the last `pending` event on execution-events: how fast the trigger step alone stored them.
    created_per_second: float
    # The same, to the last `dispatched` event on execution-events (sent once the status is stored).
    dispatched_per_second: float
    # First produce to the last `dispatched` event: CPU per process (1.0 = one core), and per execution.
    cpu_cores: dict[str, float]
    cpu_ms_per_execution: dict[str, float]
    # Requests the endpoint's own log shows it served (moto's, where the bench started it), per execution.
    logged_requests_per_execution: float | None


@dataclass(frozen=True)
class PipelineRun:
    executions: int
    tenants: int
    throughput: Throughput
    latency: Latency
    worker_peak_rss_mib: float
    distinct_jobs: int
    job_records: int
    distinct_dispatched: int

    @property
    def per_second(self) -> float:
        return self.throughput.per_second


@dataclass
class Running:
    """The worker, its watchers and a producer, for the length of a run."""

    settings: Settings
    worker: WorkerProcess
    watch: JobWatch
    producer: Any
    tenants: list[str]
    rss: PeakRss

    @property
    def pid(self) -> int:
        return _pid(self.worker)

    def alive(self) -> None:
        process = self.worker.process
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the worker exited with code {process.returncode}\n{self.worker.log_tail()}")

    def records(self, numbers: range) -> list[tuple[Key, tuple[str, bytes]]]:
        tenants = self.tenants
        chosen = [(tenants[n % len(tenants)], n) for n in numbers]
        return [((tenant, f"event-{n}"), trigger_record(tenant, n)) for tenant, n in chosen]

    async def send(self, record: tuple[str, bytes], timestamp_ms: int | None = None) -> Any:
        key, value = record
        topic = self.settings.topic_trigger_execution
        return await self.producer.send(topic, value, key=key.encode(), timestamp_ms=timestamp_ms)


def pipeline_settings(base: Settings) -> Settings:
    run = uuid.uuid4().hex[:8]
    topics = {
        name: f"{getattr(base, name)}-bench-{run}"
        for name in Settings.model_fields
        if name.startswith("topic_")
    }
    return base.model_copy(
        update={
            **topics,
            "consumer_group": f"execution-stream-bench-{run}",
            "dynamodb_table": f"Executions-bench-{run}",
            "default_concurrency_limit": UNLIMITED,
            # Any free port for its /healthz and /metrics: other work on the machine may hold 6066.
            "worker_web_port": 0,
        }
    )


async def throughput(
    running: Running,
    count: int,
    dynamodb: psutil.Process | None,
    request_log: Path | None,
    profiler: Profiler,
) -> Throughput:
    records = running.records(range(count))
    keys = [key for key, _ in records]
    processes = stack_processes(running.pid, dynamodb)
    cpu_before, requests_before = cpu_seconds(processes), served_requests(request_log)
    profiler.start(processes)
    started = time.time()
    delivered = [await running.send(record) for _, record in records]
    await asyncio.gather(*delivered)
    jobs = await running.watch.wait_for(
        keys, jobs_of, "P: triggers -> runner-jobs", PHASE_SECONDS, running.alive
    )
    dispatched = await running.watch.wait_for(
        keys, dispatched_of, "P: ... -> dispatched", PHASE_SECONDS, running.alive
    )
    # CPU and requests over the whole of the work: until the last `dispatched` event was seen.
    cpu_after, requests_after = cpu_seconds(processes), served_requests(request_log)
    profiler.stop()
    last_job = max(seen.timestamp_ms for seen in jobs) / 1000
    created = [running.watch.created[key].timestamp_ms for key in keys if key in running.watch.created]
    last_created = max(created, default=0) / 1000
    wall = max(seen.received_at for seen in dispatched) - started
    cpu = CpuShare.between(cpu_before, cpu_after, wall)
    requests = None if requests_before is None or requests_after is None else requests_after - requests_before
    return Throughput(
        seconds=last_job - started,
        per_second=count / (last_job - started),
        created_per_second=count / (last_created - started),
        dispatched_per_second=count / (max(s.timestamp_ms for s in dispatched) / 1000 - started),
        cpu_cores=cpu.cores,
        cpu_ms_per_execution={name: 1000 * share * wall / count for name, share in cpu.cores.items()},
        logged_requests_per_execution=None if requests is None else requests / count,
    )


async def latency(running: Running, numbers: range, rate: float, dynamodb: psutil.Process | None) -> Latency:
    """Triggers at `rate` per second, each stamped with its produce time; trigger-to-job latency."""
    records = running.records(numbers)
    keys = [key for key, _ in records]
    produced_ms: dict[Key, int] = {}

    async def paced() -> None:
        delivered = []
        began = time.monotonic()
        for index, (key, record) in enumerate(records):
            await asyncio.sleep(max(0.0, began + index / rate - time.monotonic()))
            produced_ms[key] = int(time.time() * 1000)
            delivered.append(await running.send(record, timestamp_ms=produced_ms[key]))
        await asyncio.gather(*delivered)

    ours = stack_processes(running.pid, dynamodb)
    before, began = cpu_seconds(ours), time.monotonic()
    producing = asyncio.create_task(paced())
    try:
        label = f"P: latency at {rate:.0f}/s"
        seen = await running.watch.wait_for(keys, jobs_of, label, PHASE_SECONDS, running.alive)
        await producing
    finally:
        producing.cancel()
    others = CpuShare.between(before, cpu_seconds(ours), time.monotonic() - began).cores[OTHERS]
    await running.watch.wait_for(keys, dispatched_of, "P: ... -> dispatched", PHASE_SECONDS, running.alive)
    to_job = [job.timestamp_ms - produced_ms[key] for key, job in zip(keys, seen, strict=True)]
    created = running.watch.created
    to_stored = [created[key].timestamp_ms - produced_ms[key] for key in keys if key in created]
    job, stored = percentiles(to_job), percentiles(to_stored)
    return Latency(
        rate_per_second=rate,
        count=len(to_job),
        p50_ms=job[49],
        p95_ms=job[94],
        p99_ms=job[98],
        max_ms=float(max(to_job)),
        stored_p50_ms=stored[49],
        stored_p95_ms=stored[94],
        others_cores=others,
    )


def percentiles(values: list[int]) -> list[float]:
    return statistics.quantiles(values, n=100, method="inclusive")


@asynccontextmanager
async def worker_running(
    base: Settings, tenant_count: int, log_path: Path, phase: str
) -> AsyncIterator[Running]:
    """A fresh worker on fresh topics and table, its assets loaded and one trigger per tenant
    dispatched (warm-up); stopped on the way out."""
    settings = pipeline_settings(base)
    await provision(settings)
    tenants = [f"bench-tenant-{n}" for n in range(tenant_count)]
    await produce(settings, settings.topic_assets, [asset_record(t, f"asset-{t}") for t in tenants])
    worker = WorkerProcess(settings, log_path)
    worker.start()
    rss = PeakRss(psutil.Process(_pid(worker)))
    rss.start()
    watch = JobWatch(
        settings.kafka_bootstrap_servers, settings.topic_runner_jobs, settings.topic_execution_events
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
    try:
        await watch.start()
        await producer.start()
        running = Running(settings, worker, watch, producer, tenants, rss)
        warm_up = running.records(range(WARM_UP_FIRST_NUMBER, WARM_UP_FIRST_NUMBER + tenant_count))
        for _, record in warm_up:
            await running.send(record)
        await watch.wait_for(
            [k for k, _ in warm_up], jobs_of, f"{phase}: warm-up", WARM_UP_SECONDS, running.alive
        )
        yield running
    finally:
        await rss.stop()
        await producer.stop()
        await watch.stop()
        await asyncio.to_thread(stop_worker, worker)


async def pipeline_run(
    base: Settings,
    *,
    count: int,
    latency_count: int,
    tenant_count: int,
    log_dir: Path,
    dynamodb: psutil.Process | None,
    request_log: Path | None,
    profiler: Profiler,
) -> PipelineRun:
    """`dynamodb`: the endpoint's process, where the bench started it (its CPU is then accounted);
    `request_log`: a log with one line per request it served (moto's), for a count during P."""
    try:
        async with worker_running(base, tenant_count, log_dir / "worker.log", "P") as running:
            measured = await throughput(running, count, dynamodb, request_log, profiler)
            rate = measured.per_second / 2
            latencies = await latency(running, range(count, count + latency_count), rate, dynamodb)
    finally:
        profiler.stop()
    watch = running.watch
    return PipelineRun(
        executions=count,
        tenants=tenant_count,
        throughput=measured,
        latency=latencies,
        worker_peak_rss_mib=running.rss.peak_mib,
        distinct_jobs=len(watch.jobs),
        job_records=watch.job_records,
        distinct_dispatched=len(watch.dispatched),
    )


def jobs_of(watch: JobWatch) -> dict[Key, Seen]:
    return watch.jobs


def dispatched_of(watch: JobWatch) -> dict[Key, Seen]:
    return watch.dispatched


def _pid(worker: WorkerProcess) -> int:
    if worker.process is None:
        raise RuntimeError("the worker is not started")
    return worker.process.pid


def stop_worker(worker: WorkerProcess) -> None:
    try:
        worker.stop(timeout=30)
    except Exception:
        worker.kill()
