"""A runner that reports the instant it gets its job, while DynamoDB answers slowly: its report often
comes before the job's `dispatched` mark is stored, and must not be lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiokafka import AIOKafkaProducer

from execution_stream.adapters.kafka_topic_reader import READ_UNCOMMITTED, KafkaTopicReader
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import ExecutionKey
from execution_stream.settings import Settings
from tests.support.ledger import asset_record, executions_of, trigger_record
from tests.support.pipeline import Pipeline, produce
from tests.support.tcp_proxy import running_tcp_proxy

TENANTS = ("tenant-a", "tenant-b", "tenant-c", "tenant-d")
TRIGGERS = 200
# The UpdateItem that stores the `dispatched` mark (botocore's JSON): only it sets :status so.
DISPATCHED_MARK = re.compile(rb'":status":\s*\{"S":\s*"dispatched"\}')


def dynamodb_latency(chunk: bytes) -> float:
    """Seconds a request or an answer waits: 50-150 ms; the dispatched mark's request 2-6 s, as if
    throttled and retried (as the issue saw it). With 50-150 ms for every call alone, no report
    overtook its mark in our runs: the status step reads the item before its conditional write, two
    round trips to the mark's one."""
    if DISPATCHED_MARK.search(chunk):
        return random.uniform(2.0, 6.0)
    return random.uniform(0.05, 0.15)


def has_findings(jit_event_id: str) -> bool:
    return int(jit_event_id.removeprefix("event-")) % 3 == 0


@dataclass
class InstantRunner:
    """Reads `runner-jobs` and reports each job `completed` the moment it sees it."""

    settings: Settings
    reported: set[str] = field(default_factory=set)

    async def run(self, reader: KafkaTopicReader, producer: AIOKafkaProducer) -> None:
        while True:
            batches = await reader.poll(timeout_ms=100)
            jobs = [json.loads(r.value) for records in batches.values() for r in records if r.value]
            sent = [
                await producer.send(self.settings.topic_execution_status, **self._report(j)) for j in jobs
            ]
            await asyncio.gather(*sent)
            self.reported.update(job["execution_id"] for job in jobs)

    def _report(self, job: dict[str, str]) -> dict[str, bytes]:
        update = {
            "tenant_id": job["tenant_id"],
            "jit_event_id": job["jit_event_id"],
            "execution_id": job["execution_id"],
            "status": "completed",
            "has_findings": has_findings(job["jit_event_id"]),
            "at": datetime.now(UTC).isoformat(),
        }
        return {"key": job["tenant_id"].encode(), "value": json.dumps(update).encode()}


@asynccontextmanager
async def instant_runner(settings: Settings) -> AsyncIterator[InstantRunner]:
    runner = InstantRunner(settings)
    jobs = KafkaTopicReader(
        settings.kafka_bootstrap_servers, [settings.topic_runner_jobs], isolation_level=READ_UNCOMMITTED
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=0)
    await jobs.start()
    await producer.start()
    try:
        task = asyncio.create_task(runner.run(jobs, producer))
        yield runner
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await jobs.stop()
        await producer.stop()


async def test_a_report_that_overtakes_the_dispatched_mark_is_applied_not_lost(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(t, f"asset-{t}") for t in TENANTS])
    triggers = [trigger_record(TENANTS[n % len(TENANTS)], n) for n in range(TRIGGERS)]
    endpoint = urlsplit(settings.dynamodb_endpoint_url or "")
    started = time.monotonic()
    async with (
        running_tcp_proxy(endpoint.hostname or "127.0.0.1", endpoint.port or 80) as slow_dynamodb,
        instant_runner(settings) as runner,
    ):
        slow_dynamodb.delay = dynamodb_latency
        # A throttled call backs off without a connection; here a slow one holds it: a pool that
        # never runs short keeps the delays from queueing every other call behind the marks.
        pipeline.start_worker(
            dynamodb_endpoint_url=slow_dynamodb.url,
            dynamodb_max_pool_connections=256,
            default_concurrency_limit=TRIGGERS // len(TENANTS),
        )
        await produce(settings, settings.topic_trigger_execution, triggers)

        async def reported_and_settled() -> list[Execution] | None:
            if len(runner.reported) < TRIGGERS:
                return None  # not read meanwhile: the test's reads would slow the store under test
            stored = await executions_of(pipeline.repository, TENANTS)
            unsettled = [
                e for e in stored if e.status in (ExecutionStatus.PENDING, ExecutionStatus.DISPATCHED)
            ]
            return stored if len(stored) == TRIGGERS and not unsettled else None

        stored = await pipeline.eventually(reported_and_settled, "every report applied", seconds=120)
    held = [await pipeline.repository.held_reports(ExecutionKey.of(e)) for e in stored]
    overtaken = sum(1 for reports in held if reports)
    print(
        f"{overtaken} of {TRIGGERS} reports overtook their dispatched mark and were held;"
        f" all settled in {time.monotonic() - started:.1f}s"
    )
    assert overtaken > 0, "no report overtook its mark: the race under test did not happen"
    assert {e.status for e in stored} == {ExecutionStatus.COMPLETED}
    assert all(e.error is None for e in stored)  # none timed out
    assert [e.execution_id for e in stored if e.has_findings != has_findings(e.jit_event_id)] == []
