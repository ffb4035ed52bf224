"""Fault 1: the worker killed with SIGKILL at random moments under traffic, three times, and restarted."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.support.fault_run import FaultRun, assert_no_loss_or_duplication
from tests.support.pipeline import Pipeline
from tests.support.workload import plan_triggers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]


TRIGGERS = 240


async def test_a_worker_killed_three_times_under_traffic_loses_and_duplicates_no_execution(
    fault_pipeline: Pipeline,
) -> None:
    run = FaultRun("sigkill x3", fault_pipeline, plan_triggers(TRIGGERS), chunk=10, pause=1.2)
    seed = random.randrange(1_000_000)
    chance = random.Random(seed)
    print(f"random seed {seed}")
    try:
        await run.start()
        run.start_traffic()
        await run.wait_until_stored(20)
        kills = []
        for number in range(3):
            await asyncio.sleep(chance.uniform(0.5, 4.0))
            worker = fault_pipeline.workers[-1]
            worker.kill()
            kills.append((number, len(await run.stored()), len(run.runners.jobs_seen())))
            run.start_worker()
            if number < 2:
                # Let the new worker get going, so the next kill falls in the middle of work again.
                before = len(run.runners.jobs_seen())

                async def progressed(before: int = before) -> bool:
                    return len(run.runners.jobs_seen()) > before

                await fault_pipeline.eventually(progressed, "progress after a restart", 90)
        run.fault_ended()
        await run.traffic_done()
        started = time.monotonic()
        ledger = await run.settle()
    finally:
        await run.stop()
    print(
        f"kills at (n, stored, dispatched): {kills}; settled {time.monotonic() - started:.1f}s after traffic"
    )
    print(ledger.line())
    print(ledger.details)
    assert_no_loss_or_duplication(ledger, dispatch_duplicates_allowed=True)
    assert ledger.dispatches - ledger.dispatch_duplicates == ledger.sent
    assert ledger.dlq == 0, ledger.details
