"""Fault 5: a second worker joins the group under traffic, then leaves it (SIGTERM)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.fault_run import (
    FaultRun,
    assert_no_loss_or_duplication,
    group_members,
)
from tests.support.pipeline import Pipeline
from tests.support.workload import plan_triggers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(360)]

TRIGGERS = 240


async def test_a_worker_joining_then_leaving_mid_stream_loses_and_duplicates_nothing(
    fault_pipeline: Pipeline,
) -> None:
    run = FaultRun("rebalance join+leave", fault_pipeline, plan_triggers(TRIGGERS), pause=0.8)
    settings = fault_pipeline.settings
    try:
        await run.start()
        run.start_traffic()
        await run.wait_until_stored(40)
        second = run.start_worker()

        async def members(count: int) -> bool:
            return await group_members(settings) == count

        await fault_pipeline.eventually(lambda: members(2), "the second worker in the group", 60)
        before = len(run.runners.jobs_seen())

        async def progressed() -> bool:
            return len(run.runners.jobs_seen()) >= before + 20

        await fault_pipeline.eventually(progressed, "progress with two workers", 60)
        code = await asyncio.to_thread(second.stop, 60)
        await fault_pipeline.eventually(lambda: members(1), "the second worker gone from the group", 60)
        run.fault_ended()
        await run.traffic_done()
        ledger = await run.settle()
    finally:
        await run.stop()
    print(ledger.line())
    print(ledger.details)
    assert code == 0, second.log_tail()
    assert_no_loss_or_duplication(ledger)
    assert ledger.dlq == 0, ledger.details
