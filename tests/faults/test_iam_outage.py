"""Fault 3b: DynamoDB answers the worker `AccessDeniedException` for 20 s (an IAM incident), under traffic.

The worker reaches the local endpoint through an HTTP proxy that forwards every request, then denies
every one for 20 s as DynamoDB does when the service's role loses its permissions, then forwards
again. No record is at fault, so none may be dead-lettered: the worker pauses, says so loudly (an
error line and `execution_stream_dependency_pauses_total`), and catches up once DynamoDB answers again.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import defaultdict
from collections.abc import Iterable

import aiohttp
import pytest

from execution_stream.domain.models import Execution
from execution_stream.domain.timestamps import parse_timestamp
from execution_stream.settings import Settings
from tests.support.fault_run import FaultRun, assert_no_loss_or_duplication, read_topic
from tests.support.http_fault_proxy import running_http_fault_proxy
from tests.support.pipeline import Pipeline
from tests.support.workload import plan_triggers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

TRIGGERS = 240
DENIAL_SECONDS = 20.0
PAUSES = 'execution_stream_dependency_pauses_total{dependency="dynamodb",reason="AccessDeniedException"}'


async def test_access_denied_for_20s_pauses_the_worker_and_dead_letters_nothing(
    fault_pipeline: Pipeline,
) -> None:
    assert fault_pipeline.settings.dynamodb_endpoint_url is not None
    async with running_http_fault_proxy(fault_pipeline.settings.dynamodb_endpoint_url) as proxy:
        run = FaultRun(
            "dynamodb 20s access denied",
            fault_pipeline,
            plan_triggers(TRIGGERS),
            pause=1.0,
            worker_overrides={"dynamodb_endpoint_url": proxy.url},
        )
        try:
            await run.start()
            run.start_traffic()
            await run.wait_until_stored(30)
            proxy.set_mode("deny")
            stored_at_denial = len(await run.stored())
            await asyncio.sleep(DENIAL_SECONDS)
            stored_after_denial = len(await run.stored())
            pauses_counted = await scraped(fault_pipeline.workers[0].settings, PAUSES)
            proxy.set_mode("pass")
            run.fault_ended()
            await run.traffic_done()
            ledger = await run.settle(seconds=240)
        finally:
            await run.stop()
        latency = await latency_by_tenant(run.settings, await run.stored())
        print(ledger.line())
        print(ledger.details)
        print(f"proxy: {proxy.counts}; stored {stored_at_denial} at the denial, {stored_after_denial} after")
        print(f"pauses counted by the worker during the denial: {pauses_counted}")
        for tenant, seconds in sorted(latency.items()):
            print(
                f"LATENCY {tenant}: trigger->dispatched p50={p(seconds, 50):.1f}s p99={p(seconds, 99):.1f}s"
            )
    assert proxy.counts.denied > 0, "the worker met the denial"
    # Nothing was stored while access was denied, and the worker gave up on nothing.
    assert stored_after_denial - stored_at_denial <= 2 * 16
    assert pauses_counted is not None
    assert pauses_counted > 0
    loud = [
        line
        for w in fault_pipeline.workers
        for line in w.log_tail(100_000).splitlines()
        if '"level": "error"' in line and "AccessDeniedException" in line and "paused" in line
    ]
    assert loud, "the worker said, as an error, that DynamoDB refused it"
    assert_no_loss_or_duplication(ledger)
    assert ledger.dlq == 0, ledger.details


async def scraped(settings: Settings, series: str) -> float | None:
    """The value of `series` on the worker's /metrics, None when it is not there."""
    url = f"http://{settings.worker_web_host}:{settings.worker_web_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    values = [line.rpartition(" ")[2] for line in text.splitlines() if line.startswith(series + " ")]
    return float(values[0]) if values else None


async def latency_by_tenant(settings: Settings, executions: Iterable[Execution]) -> dict[str, list[float]]:
    """Seconds from a trigger's first send (its record's timestamp) to its execution's dispatch."""
    sent_at: dict[tuple[str, str], float] = {}
    for record in await read_topic(settings, settings.topic_trigger_execution, TRIGGERS):
        trigger = json.loads(record.value)
        key = (trigger["tenant_id"], trigger["jit_event_id"])
        sent_at[key] = min(sent_at.get(key, math.inf), record.timestamp / 1000)
    latency: dict[str, list[float]] = defaultdict(list)
    for execution in executions:
        if execution.dispatched_at is not None:
            dispatched = parse_timestamp(execution.dispatched_at).timestamp()
            latency[execution.tenant_id].append(
                dispatched - sent_at[(execution.tenant_id, execution.jit_event_id)]
            )
    return latency


def p(values: list[float], percentile: int) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]
