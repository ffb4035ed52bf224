"""Two workers in one group: each one's timers act on the tenants of its own partitions only.

faust keeps a standby copy of the other worker's table partitions; a timer iterating the whole table
would count, wake and time out the other worker's tenants as well.
"""

from __future__ import annotations

import re
from functools import partial

import aiohttp

from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.domain.models import ExecutionStatus
from tests.support.fault_run import group_members
from tests.support.ledger import asset_record, executions_of, trigger_record
from tests.support.pipeline import Pipeline, group_stable, produce

TENANTS = [f"tenant-{n}" for n in range(6)]
PER_TENANT = 5  # one holds the tenant's only slot, four wait
PENDING_METRIC = re.compile(r'^execution_stream_pending_executions\{tenant="([^"]+)"\} ([0-9.]+)$', re.M)


async def pending_gauges(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
        text = await answer.text()
    return {tenant: float(value) for tenant, value in PENDING_METRIC.findall(text)}


async def test_each_tenants_waiting_executions_are_counted_by_one_worker_only(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(t, f"asset-{t}") for t in TENANTS])
    ports = [free_loopback_port(), free_loopback_port()]
    timers = {"default_concurrency_limit": 1, "watchdog_interval_seconds": 0.5}
    pipeline.start_worker(worker_web_port=ports[0], **timers)
    await pipeline.eventually(partial(group_stable, settings), "the first worker's group stable")
    pipeline.start_worker(worker_web_port=ports[1], **timers)
    records = [trigger_record(tenant, n) for tenant in TENANTS for n in range(PER_TENANT)]
    await produce(settings, settings.topic_trigger_execution, records)

    async def stored() -> bool:
        executions = await executions_of(pipeline.repository, TENANTS)
        dispatched = [e for e in executions if e.status is ExecutionStatus.DISPATCHED]
        return len(executions) == len(records) and len(dispatched) == len(TENANTS)

    await pipeline.eventually(stored, "every trigger stored, one per tenant dispatched")

    async def both_members_and_stable() -> bool:
        return await group_members(settings) == 2 and await group_stable(settings)

    await pipeline.eventually(both_members_and_stable, "both workers members of a stable group")
    expected = {tenant: float(PER_TENANT - 1) for tenant in TENANTS}
    last: list[dict[str, float]] = []

    async def counted_once() -> bool:
        try:
            gauges = [await pending_gauges(port) for port in ports]
        except aiohttp.ClientConnectionError:
            return False  # a worker's web endpoint not listening yet
        totals = {tenant: sum(g.get(tenant, 0.0) for g in gauges) for tenant in TENANTS}
        last[:] = gauges
        owners = [{t for t, v in g.items() if v > 0} for g in gauges]
        return totals == expected and all(owners) and not owners[0] & owners[1]

    await pipeline.eventually(counted_once, f"each tenant counted by its own worker only: {last}", 60)
