"""Fault 4: the GitHub stand-in answers 500s and hangs past the client's timeout, then heals."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from tests.support.fault_run import FaultRun, assert_no_loss_or_duplication
from tests.support.pipeline import Pipeline
from tests.support.workload import GITHUB, plan_triggers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(360)]

TRIGGERS = 200
FAILING_SECONDS = 10.0
HANGING_SECONDS = 12.0
HANGS = 3


async def test_github_500s_and_timeouts_are_retried_and_no_job_is_dispatched_twice(
    fault_pipeline: Pipeline,
) -> None:
    github = fault_pipeline.github
    # Every third job goes to GitHub, so that the outage meets many of them.
    run = FaultRun("github 5xx+timeouts", fault_pipeline, plan_triggers(TRIGGERS, github_every=3), pause=1.0)
    try:
        await run.start()
        run.start_traffic()
        await run.wait_until_stored(20)
        # First 500s, then answers held past the dispatcher's 10 s timeout, on both the token and
        # the dispatch endpoints.
        github.set_faults(endpoint="any", fail_times=1_000_000)
        outage_started = time.monotonic()
        dispatched_before = len(github.dispatches)
        await asyncio.sleep(FAILING_SECONDS)
        dispatched_during = len(github.dispatches) - dispatched_before
        failed = sum(1 for r in github.requests if r.status == 500)
        github.set_faults(endpoint="any", hang_times=HANGS, hang_seconds=11)
        await asyncio.sleep(HANGING_SECONDS)
        hangs_met = HANGS - github.faults.hang_times
        github.set_faults()
        run.fault_ended()
        await run.traffic_done()
        ledger = await run.settle()
    finally:
        await run.stop()
    print(ledger.line())
    print(ledger.details)
    print(
        f"outage began {time.monotonic() - outage_started:.0f}s before the end: {failed} answers 500, "
        f"{hangs_met} held past the timeout; {dispatched_during} dispatches while failing"
    )
    assert failed > 0, "the dispatcher met the 500s"
    assert hangs_met > 0, "the dispatcher met the timeouts"
    assert dispatched_during == 0
    assert_no_loss_or_duplication(ledger)
    per_execution = Counter(d.inputs["execution_id"] for d in github.dispatches)
    github_jobs = {t.execution_id for t in run.triggers if t.job_runner == GITHUB}
    assert set(per_execution) == github_jobs
    assert set(per_execution.values()) == {1}, "a job GitHub accepted was sent again"
    assert ledger.dlq == 0, ledger.details
