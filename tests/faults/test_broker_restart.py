"""Fault 2: the Kafka broker stopped and started again (same ports, same data) while the worker runs.

This module brings its own broker, so that the session's broker, which every other test uses, is
never disturbed. The worker is not restarted by the test unless it exits by itself (then the test
says so): faust and aiokafka reconnect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from execution_stream.localstack.kafka_broker import KafkaBroker
from execution_stream.settings import Settings
from tests.e2e.conftest import Pipeline, open_pipeline
from tests.faults.conftest import fault_settings
from tests.support.fault_run import FaultRun, assert_no_loss_or_duplication
from tests.support.pipeline import AppKey
from tests.support.workload import plan_triggers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

TRIGGERS = 240
DOWN_SECONDS = 8.0


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
    run = FaultRun("broker restart", broker_pipeline, plan_triggers(TRIGGERS), pause=0.8)
    restarted_worker = False
    try:
        await run.start()
        run.start_traffic()
        await run.wait_until_stored(40)
        stopping = time.monotonic()
        await asyncio.to_thread(own_broker.stop)
        stopped = time.monotonic()
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(own_broker.start)
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
        ledger = await run.settle(seconds=240)
    finally:
        await run.stop()
    print(ledger.line())
    print(ledger.details)
    print(f"worker restarted by the test: {restarted_worker}; producer resends: {run.workload.resends}")
    # A produce request the broker wrote just before it stopped is retried by the producer (records
    # are at least once): a runner-jobs record can then arrive twice (README "Delivery").
    assert_no_loss_or_duplication(ledger, dispatch_duplicates_allowed=True)
    assert ledger.dispatches - ledger.dispatch_duplicates == ledger.sent
    assert ledger.dlq == 0, ledger.details
