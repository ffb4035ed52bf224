"""Fault 3: the worker's DynamoDB endpoint unreachable for 20 s (refused, then black-holed).

The worker reaches the local DynamoDB endpoint through a loopback proxy; the endpoint keeps its data
in memory, so it is never restarted: the proxy refuses connections for the first half of the outage
and swallows them for the second. The worker must pause (no dead letter, nothing lost, nothing sent
twice) and catch up.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import urlsplit

import pytest

from tests.support.fault_run import FaultRun, assert_no_loss_or_duplication
from tests.support.pipeline import Pipeline
from tests.support.tcp_proxy import running_tcp_proxy
from tests.support.workload import plan_triggers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

TRIGGERS = 240
OUTAGE_SECONDS = 20.0


async def test_dynamodb_unreachable_for_20s_pauses_the_worker_and_loses_nothing(
    fault_pipeline: Pipeline,
) -> None:
    endpoint = urlsplit(fault_pipeline.settings.dynamodb_endpoint_url or "")
    assert endpoint.hostname is not None
    assert endpoint.port is not None
    async with running_tcp_proxy(endpoint.hostname, endpoint.port) as proxy:
        run = FaultRun(
            "dynamodb 20s outage",
            fault_pipeline,
            plan_triggers(TRIGGERS),
            pause=1.0,
            # Two attempts per call: the outage reaches the pipeline's own backoff instead of being
            # absorbed by botocore's retries (eight attempts, up to 20 s apart, by default).
            worker_overrides={"dynamodb_endpoint_url": proxy.url, "dynamodb_max_attempts": 2},
        )
        try:
            await run.start()
            run.start_traffic()
            await run.wait_until_stored(30)
            proxy.set_mode("refuse")
            stored_at_outage = len(await run.stored())
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            proxy.set_mode("blackhole")
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            stored_after_outage = len(await run.stored())
            # Every connection open at the outage was reset or black-holed: whatever the proxy
            # forwards from here on went through new connections, made after DynamoDB came back.
            through_proxy_at_outage_end = replace(proxy.counts)
            proxy.set_mode("pass")
            run.fault_ended()
            await run.traffic_done()
            ledger = await run.settle(seconds=240)
        finally:
            await run.stop()
        print(ledger.line())
        print(ledger.details)
        print(f"proxy: {proxy.counts}; stored {stored_at_outage} at the outage, {stored_after_outage} after")
    assert proxy.counts.refused > 0, "the worker met the refusal"
    assert proxy.counts.forwarded > through_proxy_at_outage_end.forwarded, "the worker reconnected after"
    assert proxy.counts.bytes_down > through_proxy_at_outage_end.bytes_down, "and DynamoDB answered it"
    # Nothing was stored while DynamoDB was away, and the worker did not give up on anything.
    assert stored_after_outage - stored_at_outage <= 2 * 16
    paused = [
        line for w in fault_pipeline.workers for line in w.log_tail(100_000).splitlines() if "paused" in line
    ]
    assert paused, "the worker backed off while DynamoDB was away"
    assert len(fault_pipeline.workers) == 1
    assert_no_loss_or_duplication(ledger)
    assert ledger.dlq == 0, ledger.details
