"""Fault 6: one tenant's GitHub installation is rate-limited for the whole run (its reset an hour
away); the other tenants' jobs, GitHub and topic-fed, flow as if nothing happened.

Tenant A's installation answers 403 with `x-ratelimit-remaining: 0` and a reset 3,000 s away;
tenant C's resets 8 s after the start, so its jobs are set aside and dispatched when the reset
comes; tenant B (50 jobs, half GitHub on its own installation, half topic-fed) must see normal
latency. A's jobs stay pending holding their slots, and fail with the reason once their timeout
passes. The ledger: lost 0, dead-lettered 0, B's latency from creation to dispatch.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime

import pytest

from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.timestamps import parse_timestamp
from tests.support.factories import asset
from tests.support.ledger import executions_of, trigger_record
from tests.support.pipeline import Pipeline, as_json, produce, read_topic

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

A, B, C = "tenant-limited", "tenant-busy", "tenant-soon"
INSTALLATIONS = {A: "1001", B: "1002", C: "1003"}
RESET_SECONDS = {INSTALLATIONS[A]: 3000.0, INSTALLATIONS[C]: 8.0}
JOBS = {A: 10, B: 50, C: 5}
JOB_TIMEOUT_SECONDS = 45
DISPATCHED_WITHIN_SECONDS = 10.0  # "a few seconds", far below the 3,000 s a blocked batch would wait


def asset_of(tenant: str) -> tuple[str, bytes]:
    document = asset(tenant, f"asset-{tenant}").model_copy(update={"installation_id": INSTALLATIONS[tenant]})
    return document.asset_id, as_json(document.model_dump(mode="json"))


def triggers_of(tenant: str) -> list[tuple[str, bytes]]:
    runners = ["github_actions", "jit_runner"] if tenant == B else ["github_actions"]
    return [trigger_record(tenant, n, runner=runners[n % len(runners)]) for n in range(JOBS[tenant])]


def seconds_to_dispatch(execution: Execution) -> float:
    assert execution.dispatched_at is not None
    created = datetime.fromisoformat(execution.created_at)
    return (datetime.fromisoformat(execution.dispatched_at) - created).total_seconds()


async def test_a_rate_limited_installation_delays_only_its_own_tenant(fault_pipeline: Pipeline) -> None:
    pipeline, settings = fault_pipeline, fault_pipeline.settings
    pipeline.github.set_faults(rate_limited_installations=RESET_SECONDS)
    soon_reset_at = time.time() + RESET_SECONDS[INSTALLATIONS[C]]
    await produce(settings, settings.topic_assets, [asset_of(tenant) for tenant in (A, B, C)])
    pipeline.start_worker(
        job_timeout_seconds=JOB_TIMEOUT_SECONDS,
        dispatch_retry_check_seconds=0.5,
        tenant_concurrency_limits={B: 100},
    )
    started = time.monotonic()
    # A's jobs first, so that B's and C's share batches with them.
    interleaved = [record for pair in zip(triggers_of(A), triggers_of(B), strict=False) for record in pair]
    rest = triggers_of(B)[JOBS[A] :] + triggers_of(C)
    await produce(settings, settings.topic_trigger_execution, interleaved + rest)

    async def others_dispatched() -> list[Execution] | None:
        stored = await executions_of(pipeline.repository, [B, C])
        done = [e for e in stored if e.status is ExecutionStatus.DISPATCHED]
        return stored if len(done) == JOBS[B] + JOBS[C] else None

    others = await pipeline.eventually(others_dispatched, "B's and C's jobs dispatched", seconds=90)
    others_at = time.monotonic() - started

    async def limited_failed() -> list[Execution] | None:
        stored = await executions_of(pipeline.repository, [A])
        failed = [e for e in stored if e.status is ExecutionStatus.FAILED]
        return stored if len(failed) == JOBS[A] else None

    limited = await pipeline.eventually(limited_failed, "A's jobs failed at their timeout", seconds=120)
    dead_letters = (await read_topic(settings, settings.topic_execution_dlq)).records

    busy = sorted(seconds_to_dispatch(e) for e in others if e.tenant_id == B)
    soon = sorted(seconds_to_dispatch(e) for e in others if e.tenant_id == C)
    soon_dispatched_at = [
        parse_timestamp(e.dispatched_at or "").timestamp() for e in others if e.tenant_id == C
    ]
    p99 = busy[min(len(busy) - 1, round(0.99 * (len(busy) - 1)))]
    dispatched_to = {d.installation_id for d in pipeline.github.dispatches}
    print(
        f"ledger rate-limited installation: sent {sum(JOBS.values())}, lost "
        f"{sum(JOBS.values()) - len(others) - len(limited)}, dead-lettered {len(dead_letters)}; "
        f"{B} trigger->dispatched p50 {statistics.median(busy):.2f}s p99 {p99:.2f}s max {busy[-1]:.2f}s; "
        f"{C} dispatched {min(soon):.1f}-{max(soon):.1f}s after creation, "
        f"{min(soon_dispatched_at) - soon_reset_at:+.1f}s from its reset; "
        f"{A} failed after {time.monotonic() - started:.0f}s; B+C done at {others_at:.1f}s"
    )
    assert len(others) + len(limited) == sum(JOBS.values())
    assert dead_letters == []
    assert busy[-1] <= DISPATCHED_WITHIN_SECONDS
    assert min(soon_dispatched_at) >= soon_reset_at - 1.0  # not before GitHub's reset (1 s for clocks)
    assert dispatched_to == {INSTALLATIONS[B], INSTALLATIONS[C]}
    for execution in limited:
        assert execution.dispatched_at is None
        assert execution.error is not None
        assert execution.error.startswith("timeout: never dispatched: ")
        assert "rate limit" in execution.error
