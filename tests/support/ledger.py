"""Accounting for every trigger after a run: executions stored, jobs dispatched, slots held."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from execution_stream.adapters.dynamodb_repository import DynamoDBExecutionRepository
from execution_stream.domain.models import Asset, Execution, ExecutionStatus
from execution_stream.domain.store import ExecutionQuery
from execution_stream.settings import Settings
from execution_stream.topology import TABLE_ALLOCATIONS, changelog_topic
from tests.support.factories import asset, trigger_event
from tests.support.pipeline import Pipeline, TopicReader, as_json, produce, read_topic

HOLDING = {ExecutionStatus.DISPATCHED, ExecutionStatus.RUNNING}


def asset_record(tenant: str, asset_id: str) -> tuple[str, bytes]:
    document: Asset = asset(tenant, asset_id)
    return asset_id, as_json(document.model_dump(mode="json"))


def trigger_record(
    tenant: str, number: int, runner: str = "jit_runner", asset_id: str | None = None, **overrides: Any
) -> tuple[str, bytes]:
    asset_id = asset_id or f"asset-{tenant}"
    event = trigger_event(tenant, f"event-{number}", asset_id, job_runner=runner, **overrides)
    return tenant, as_json(event.model_dump(mode="json"))


async def executions_of(repository: DynamoDBExecutionRepository, tenants: Iterable[str]) -> list[Execution]:
    found: list[Execution] = []
    for tenant in tenants:
        query = ExecutionQuery(tenant, limit=100)
        while True:
            page = await repository.list(query)
            found.extend(page.items)
            if page.next_key is None:
                break
            query = ExecutionQuery(tenant, limit=100, start_after=page.next_key)
    return found


async def slot_holders(settings: Settings) -> dict[str, dict[str, int]]:
    """Slots in use per tenant and runner, as the allocate agent's table last stored its lines."""
    changelog = await read_topic(settings, changelog_topic(settings.consumer_group, TABLE_ALLOCATIONS))
    latest: dict[str, Any] = {}
    for record in changelog.records:
        latest[json.loads(record.key)] = json.loads(record.value) if record.value else None
    holders: dict[str, dict[str, int]] = {}
    for key, line in latest.items():
        if key.startswith("L#") and line is not None and line["in_use"]:
            _, tenant, runner = key.split("#", 2)
            holders.setdefault(tenant, {})[runner] = line["in_use"]
    return holders


@dataclass(frozen=True)
class Ledger:
    sent: int
    executions: int
    distinct_executions: int
    dispatched_jobs: int
    distinct_dispatched: int
    statuses: Counter[str]

    @property
    def lost(self) -> int:
        return self.sent - self.distinct_executions

    @property
    def duplicated(self) -> int:
        return self.executions - self.distinct_executions

    def line(self) -> str:
        return (
            f"sent={self.sent} executions={self.executions} lost={self.lost} "
            f"duplicated={self.duplicated} jobs={self.dispatched_jobs} "
            f"distinct_jobs={self.distinct_dispatched} statuses={dict(self.statuses)}"
        )


def ledger_of(sent: int, executions: list[Execution], jobs: list[dict[str, Any]]) -> Ledger:
    job_ids = [job["execution_id"] for job in jobs]
    return Ledger(
        sent=sent,
        executions=len(executions),
        distinct_executions=len({e.execution_id for e in executions}),
        dispatched_jobs=len(job_ids),
        distinct_dispatched=len(set(job_ids)),
        statuses=Counter(e.status.value for e in executions),
    )


def holding_per_tenant(executions: Iterable[Execution]) -> dict[str, int]:
    held: Counter[str] = Counter(e.tenant_id for e in executions if e.status in HOLDING)
    return dict(held)


def number_of(jit_event_id: str) -> int:
    """n of the test triggers' `event-<n>`."""
    return int(jit_event_id.removeprefix("event-"))


async def complete_jobs_in_arrival_order(
    settings: Settings, tenant: str, count: int, seconds: float = 300
) -> list[int]:
    """A runner that reports `completed` the moment it gets a job: the order the jobs came in."""
    jobs = TopicReader(settings, settings.topic_runner_jobs)
    await jobs.start()
    order: list[int] = []
    done: set[str] = set()
    try:
        deadline = time.monotonic() + seconds
        while len(order) < count and time.monotonic() < deadline:
            await jobs.poll()
            reports = []
            for job in jobs.values():
                if job.get("type") != "job" or job["tenant_id"] != tenant or job["execution_id"] in done:
                    continue
                done.add(job["execution_id"])
                order.append(number_of(job["jit_event_id"]))
                update = {key: job[key] for key in ("tenant_id", "jit_event_id", "execution_id")}
                update |= {
                    "status": "completed",
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
                }
                reports.append((tenant, json.dumps(update).encode()))
            if reports:
                await produce(settings, settings.topic_execution_status, reports)
    finally:
        await jobs.stop()
    return order


async def admission_order(settings: Settings, tenant: str) -> list[int]:
    """The order the allocator forwarded a tenant's executions in (a replay may forward one again)."""
    forwarded = await read_topic(settings, settings.topic_enrich_and_dispatch)
    order: list[int] = []
    for reference in forwarded.values():
        number = number_of(reference["jit_event_id"])
        if reference["tenant_id"] == tenant and number not in order:
            order.append(number)
    return order


def numbered(executions: list[Execution]) -> dict[int, Execution]:
    return {number_of(e.jit_event_id): e for e in executions}


async def stored(
    pipeline: Pipeline, tenant: str, count: int, done: Callable[[dict[int, Execution]], bool]
) -> dict[int, Execution]:
    """The tenant's `count` executions by trigger number, once `done` holds of them."""

    async def check() -> dict[int, Execution] | None:
        found = numbered(await executions_of(pipeline.repository, [tenant]))
        return found if len(found) == count and done(found) else None

    return await pipeline.eventually(check, f"{count} executions of {tenant} as expected", 90)


def report(execution: Execution, status: str, **fields: Any) -> tuple[str, bytes]:
    """A runner's status report on `execution-status`, keyed by tenant."""
    update = {
        "tenant_id": execution.tenant_id,
        "jit_event_id": execution.jit_event_id,
        "execution_id": execution.execution_id,
        "status": status,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        **fields,
    }
    return execution.tenant_id, as_json(update)
