"""Every trigger accounted for when a worker is killed mid-stream, and when two workers share it."""

from __future__ import annotations

import asyncio
import random
from functools import partial

import pytest

from execution_stream.domain.models import ExecutionStatus
from tests.support.ledger import (
    Ledger,
    asset_record,
    executions_of,
    holding_per_tenant,
    ledger_of,
    slot_holders,
    trigger_record,
)
from tests.support.pipeline import Pipeline, TopicReader, group_stable, produce

# Room for a restarted worker to wait out its killed predecessor's session and then settle.
pytestmark = pytest.mark.timeout(480)

TENANTS = [f"tenant-{n}" for n in range(4)]
TRIGGERS = 500
SETTLE_SECONDS = 300


async def produce_triggers(pipeline: Pipeline, count: int, chunk: int = 50) -> None:
    records = [trigger_record(TENANTS[n % len(TENANTS)], n) for n in range(count)]
    for start in range(0, count, chunk):
        await produce(
            pipeline.settings, pipeline.settings.topic_trigger_execution, records[start : start + chunk]
        )
        await asyncio.sleep(0.2)


async def settle(pipeline: Pipeline) -> Ledger:
    settings = pipeline.settings

    async def all_dispatched() -> bool:
        stored = await executions_of(pipeline.repository, TENANTS)
        return len(stored) >= TRIGGERS and all(e.status is ExecutionStatus.DISPATCHED for e in stored)

    await pipeline.eventually(all_dispatched, f"{TRIGGERS} executions dispatched", SETTLE_SECONDS)
    jobs = TopicReader(settings, settings.topic_runner_jobs)
    await jobs.start()
    try:
        await jobs.wait_for(lambda r: len({v["execution_id"] for v in r.values()}) >= TRIGGERS, 60, "jobs")
        for _ in range(10):
            await jobs.poll()
    finally:
        await jobs.stop()
    executions = await executions_of(pipeline.repository, TENANTS)
    ledger = ledger_of(TRIGGERS, executions, jobs.values())
    print(ledger.line())
    holders = await slot_holders(settings)
    assert {tenant: sum(runners.values()) for tenant, runners in holders.items()} == holding_per_tenant(
        executions
    )
    return ledger


async def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(t, f"asset-{t}") for t in TENANTS])
    first = pipeline.start_worker(default_concurrency_limit=1000)
    producing = asyncio.create_task(produce_triggers(pipeline, TRIGGERS))

    async def some_stored() -> bool:
        return len(await executions_of(pipeline.repository, TENANTS)) >= 50

    await pipeline.eventually(some_stored, "a first part stored")
    await asyncio.sleep(random.uniform(0, 1.5))
    first.kill()
    pipeline.start_worker(default_concurrency_limit=1000)
    await producing

    ledger = await settle(pipeline)
    assert (ledger.lost, ledger.duplicated, ledger.executions) == (0, 0, TRIGGERS)
    assert ledger.distinct_dispatched == TRIGGERS
    assert ledger.statuses == {"dispatched": TRIGGERS}


async def test_two_workers_in_one_group_split_the_work_and_agree(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(t, f"asset-{t}") for t in TENANTS])
    pipeline.start_worker(default_concurrency_limit=1000)
    await pipeline.eventually(partial(group_stable, settings), "the first worker's group stable")
    pipeline.start_worker(default_concurrency_limit=1000)
    await produce_triggers(pipeline, TRIGGERS)

    ledger = await settle(pipeline)
    assert (ledger.lost, ledger.duplicated, ledger.executions) == (0, 0, TRIGGERS)
    assert (ledger.dispatched_jobs, ledger.distinct_dispatched) == (TRIGGERS, TRIGGERS)
