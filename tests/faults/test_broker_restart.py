"""Fault 2: the Kafka broker stopped and started again (same ports, same data) while the worker runs.

This module brings its own broker, so that the session's broker, which every other test uses, is
never disturbed. The worker is not restarted by the test unless it exits by itself (then the test
says so): faust and aiokafka reconnect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from execution_stream.dev_stack.kafka_broker import KafkaBroker
from execution_stream.dev_stack.local_github import AppKey
from execution_stream.domain.identity import execution_id_for
from execution_stream.domain.models import ExecutionStatus, TriggerEvent
from execution_stream.domain.timestamps import parse_timestamp
from execution_stream.pipeline.messages import AllocationLease, encode
from execution_stream.settings import Settings
from tests.support.factories import asset, trigger_event
from tests.support.fault_run import FaultRun, assert_no_loss_or_duplication, fault_settings
from tests.support.ledger import executions_of
from tests.support.pipeline import Pipeline, open_pipeline, produce
from tests.support.workload import plan_triggers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

TRIGGERS = 240
DOWN_SECONDS = 8.0
# Outside the workload: a tenant whose timers have something to send while the broker is down.
TIMERS_TENANT = "tenant-timers"
LIMITED_INSTALLATION = "4242"
ARMED_SECONDS = 2.0


def timer_triggers() -> tuple[TriggerEvent, TriggerEvent]:
    """A GitHub job of a rate-limited installation (admitted, set aside, never dispatched) and a
    trigger whose asset never comes (parked)."""
    held = trigger_event(TIMERS_TENANT, "held", f"asset-{TIMERS_TENANT}", job_runner="github_actions")
    parked = trigger_event(TIMERS_TENANT, "parked", "asset-never", job_runner="jit_runner")
    return held, parked


async def arm_timers(pipeline: Pipeline) -> None:
    """Just before the broker stops: the parked trigger's wait (5 s) and the held job's deadline (4 s,
    set through its lease) both run out while it is down, so the wake-up timer and the watchdog
    send while the broker is away."""
    settings = pipeline.settings
    held, parked = timer_triggers()
    lease = AllocationLease(
        tenant_id=TIMERS_TENANT,
        execution_id=execution_id_for(held),
        job_runner=held.job_runner,
        deadline_at=datetime.now(UTC) + timedelta(seconds=ARMED_SECONDS + 2),
    )
    await produce(
        settings, settings.topic_trigger_execution, [(TIMERS_TENANT, parked.model_dump_json().encode())]
    )
    await produce(settings, settings.topic_allocate_runner_resource, [(TIMERS_TENANT, encode(lease))])
    await asyncio.sleep(ARMED_SECONDS)  # both are taken in before the broker goes


async def hold_a_job(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    pipeline.github.set_faults(rate_limited_installations={LIMITED_INSTALLATION: 3000})
    document = asset(TIMERS_TENANT, f"asset-{TIMERS_TENANT}").model_copy(
        update={"installation_id": LIMITED_INSTALLATION}
    )
    await produce(settings, settings.topic_assets, [(document.asset_id, document.model_dump_json().encode())])
    held, _ = timer_triggers()
    await produce(
        settings, settings.topic_trigger_execution, [(TIMERS_TENANT, held.model_dump_json().encode())]
    )


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = KafkaBroker(tmp_path_factory.mktemp("own-broker"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def broker_pipeline(
    isolated_settings: Settings, own_broker: KafkaBroker, unique: str, fault_app_key: AppKey, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    settings = fault_settings(isolated_settings, unique).model_copy(
        update={"kafka_bootstrap_servers": own_broker.bootstrap_servers}
    )
    async with open_pipeline(settings, fault_app_key, tmp_path) as pipeline:
        yield pipeline


async def test_the_broker_restarted_under_traffic_the_worker_recovers_and_loses_nothing(
    broker_pipeline: Pipeline, own_broker: KafkaBroker
) -> None:
    run = FaultRun(
        "broker restart",
        broker_pipeline,
        plan_triggers(TRIGGERS),
        pause=0.8,
        worker_overrides={"watchdog_interval_seconds": 1.0},
    )
    restarted_worker = False
    try:
        await run.start()
        await hold_a_job(broker_pipeline)
        run.start_traffic()
        await run.wait_until_stored(40)
        await arm_timers(broker_pipeline)
        stopping, down_at = time.monotonic(), datetime.now(UTC)
        await asyncio.to_thread(own_broker.stop)
        stopped = time.monotonic()
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(own_broker.start)
        up_at = datetime.now(UTC)
        run.fault_ended()
        print(f"broker: stopped in {stopped - stopping:.1f}s, back {time.monotonic() - stopped:.1f}s later")
        worker = broker_pipeline.workers[0]
        assert worker.process is not None
        # Give the worker time to reconnect, or to exit; restart it only if it exited.
        for _ in range(60):
            if worker.process.poll() is not None or run.runners.first_job_after(run.fault_ended_at):
                break
            await asyncio.sleep(1)
        if worker.process.poll() is not None:
            print(f"the worker exited with {worker.process.returncode} after the restart; restarting it")
            worker.expected_exit = True
            restarted_worker = True
            run.start_worker()
        await run.traffic_done()
        ledger = await run.settle(seconds=240, expected_dlq=1)
        timers_tenant = {
            e.jit_event_id: e for e in await executions_of(broker_pipeline.repository, [TIMERS_TENANT])
        }
        logs = "\n".join(w.log_path.read_text(errors="replace") for w in broker_pipeline.workers)
    finally:
        await run.stop()
    print(ledger.line())
    print(ledger.details)
    print(f"worker restarted by the test: {restarted_worker}; producer resends: {run.workload.resends}")
    # A produce request the broker wrote just before it stopped is retried by the producer; being
    # idempotent, the broker writes it once: no runner-jobs record arrives twice.
    assert_no_loss_or_duplication(ledger)
    assert ledger.dispatches == ledger.sent
    # The timers' sends waited for the broker instead of crashing the worker.
    assert not restarted_worker
    timer_pauses = {what: logs.count(f"{what} paused") for what in ("watchdog", "parked-trigger wake-ups")}
    print(f"timer sends paused while the broker was away: {timer_pauses}")
    assert ledger.details["dlq_reasons"] == {"asset_not_found": 1}, ledger.details
    held, parked = timers_tenant["held"], timers_tenant["parked"]
    assert (held.status, held.dispatched_at) == (ExecutionStatus.FAILED, None)
    assert held.error == "timeout"  # its lease set the deadline before its set-aside retry time
    # The watchdog made its update while the broker was down, and sent it once the broker was back.
    assert held.completed_at is not None
    assert down_at <= parse_timestamp(held.completed_at) <= up_at
    assert parked.status is ExecutionStatus.FAILED
    assert (parked.error or "").startswith("asset_not_found")
