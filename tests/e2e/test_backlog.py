"""A tenant's backlog of any size: thousands queued in order beside a quiet tenant, through a SIGKILL,
and thousands waiting for an asset that arrives later."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from execution_stream.adapters.dynamodb_reads import open_reader
from execution_stream.domain.identity import execution_id_for
from execution_stream.domain.waiting import Waiting, WaitingReason, waiting_of
from execution_stream.settings import Settings
from execution_stream.topology import TABLE_ALLOCATIONS, TABLE_PARKED_TRIGGERS, changelog_topic
from tests.support.factories import trigger_event
from tests.support.ledger import (
    admission_order,
    asset_record,
    complete_jobs_in_arrival_order,
    number_of,
    trigger_record,
)
from tests.support.pipeline import Pipeline, TopicReader, produce, read_topic

pytestmark = pytest.mark.timeout(900)

BIG = "tenant-big"
BACKLOG = 5000
QUIET_TRIGGERS = 10
LIMIT = 2
COMPLETED_IN_ORDER = 150
TERMINAL = {"completed", "failed", "canceled"}
MAX_CHANGELOG_RECORD = 64 * 1024


def partition_of(key: str, partitions: int) -> int:
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def quiet_tenant(settings: Settings) -> str:
    """A tenant on another partition than BIG's: tenants share partitions only by chance."""
    big = partition_of(BIG, settings.kafka_partitions)
    return next(
        name
        for name in (f"tenant-quiet-{n}" for n in range(100))
        if partition_of(name, settings.kafka_partitions) != big
    )


@dataclass
class EventLedger:
    """execution-events, read as they come: each execution's statuses (events are at least once)."""

    reader: TopicReader
    seen: set[tuple[str, str]] = field(default_factory=set)
    by_tenant: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    read: int = 0

    async def poll(self) -> None:
        await self.reader.poll()
        for record in self.reader.records[self.read :]:
            event = json.loads(record.value)
            if (event["execution_id"], event["status"]) not in self.seen:
                self.seen.add((event["execution_id"], event["status"]))
                self.by_tenant[event["tenant_id"]].append(event)
        self.read = len(self.reader.records)

    def with_status(self, tenant: str, status: str) -> list[dict[str, Any]]:
        return [e for e in self.by_tenant[tenant] if e["status"] == status]

    def most_held_at_once(self, tenant: str) -> int:
        held, most = 0, 0
        for event in self.by_tenant[tenant]:
            held += event["status"] == "dispatched"
            held -= event["status"] in TERMINAL and event["previous_status"] != "pending"
            most = max(most, held)
        return most


@asynccontextmanager
async def event_ledger(settings: Settings) -> AsyncIterator[EventLedger]:
    reader = TopicReader(settings, settings.topic_execution_events)
    await reader.start()
    try:
        yield EventLedger(reader)
    finally:
        await reader.stop()


async def test_5000_queued_for_one_tenant_wait_in_order_beside_a_quiet_one_through_a_sigkill(
    pipeline: Pipeline,
) -> None:
    settings = pipeline.settings
    quiet = quiet_tenant(settings)
    await produce(settings, settings.topic_assets, [asset_record(t, f"asset-{t}") for t in (BIG, quiet)])
    first = pipeline.start_worker(default_concurrency_limit=LIMIT)
    async with event_ledger(settings) as events:
        await produce(
            settings, settings.topic_trigger_execution, [trigger_record(BIG, n) for n in range(BACKLOG)]
        )
        quiet_sent = time.monotonic()
        await produce(
            settings,
            settings.topic_trigger_execution,
            [trigger_record(quiet, n) for n in range(QUIET_TRIGGERS)],
        )

        async def quiet_dispatched() -> bool:
            await events.poll()
            return len(events.with_status(quiet, "dispatched")) >= LIMIT

        await pipeline.eventually(quiet_dispatched, "the quiet tenant's first jobs dispatched", 120)
        print(f"quiet tenant: first {LIMIT} dispatched {time.monotonic() - quiet_sent:.1f}s after sending")

        async def part_stored() -> bool:
            await events.poll()
            return len(events.with_status(BIG, "pending")) >= BACKLOG // 3

        await pipeline.eventually(part_stored, "a third of the backlog stored", 300)
        first.kill()
        pipeline.start_worker(default_concurrency_limit=LIMIT)

        async def all_stored() -> bool:
            await events.poll()
            return len(events.with_status(BIG, "pending")) == BACKLOG

        await pipeline.eventually(all_stored, f"all {BACKLOG} stored pending", 600)
        dispatched_before = [number_of(e["jit_event_id"]) for e in events.with_status(BIG, "dispatched")]
        assert sorted(dispatched_before) == list(range(LIMIT))

        order = await complete_jobs_in_arrival_order(settings, BIG, COMPLETED_IN_ORDER)

        async def all_events_in() -> bool:
            await events.poll()
            return len(events.with_status(BIG, "completed")) >= COMPLETED_IN_ORDER

        await pipeline.eventually(all_events_in, "the completions published", 120)

    await queue_seen_by_users(pipeline, order)
    # Strictly oldest first, across the kill: the allocator forwarded execution n as the n-th.
    admitted = await admission_order(settings, BIG)
    assert admitted == list(range(len(admitted)))
    assert len(admitted) >= LIMIT + COMPLETED_IN_ORDER
    # Jobs admitted in one round are dispatched side by side, so their arrival order may swap; the
    # runner's last poll may bring one or two beyond the count, which it completes as well.
    assert len(order) >= COMPLETED_IN_ORDER
    assert sorted(order) == list(range(len(order)))
    assert events.most_held_at_once(BIG) <= LIMIT
    assert await largest_changelog_record(settings, TABLE_ALLOCATIONS) < MAX_CHANGELOG_RECORD
    assert len(events.with_status(quiet, "pending")) == QUIET_TRIGGERS
    assert {number_of(e["jit_event_id"]) for e in events.with_status(BIG, "pending")} == set(range(BACKLOG))


async def largest_changelog_record(settings: Settings, table: str) -> int:
    changelog = await read_topic(settings, changelog_topic(settings.consumer_group, table))
    assert changelog.records, f"nothing on the changelog of {table}"
    return max(len(r.value or b"") + len(r.key or b"") for r in changelog.records)


async def queue_seen_by_users(pipeline: Pipeline, admitted: list[int]) -> None:
    """The last of the backlog, as the API shows it: waiting for capacity, its place in the queue."""
    last = BACKLOG - 1
    # event-0 and event-1 were admitted at once; event-n waited at index n - LIMIT; the head has passed
    # one index per completion: the snapshot is at most a second behind, so it is waited for.
    expected_position = (last - LIMIT) - len(admitted) + 1
    execution_id = execution_id_for(
        trigger_event(BIG, f"event-{last}", f"asset-{BIG}", job_runner="jit_runner")
    )
    async with open_reader(pipeline.settings) as reader:

        async def seen_waiting() -> Waiting | None:
            found = await reader.find(BIG, execution_id)
            if found is None:
                return None
            snapshots = await reader.queue_snapshots(BIG, frozenset({found.job_runner}))
            waiting = waiting_of(found, snapshots.get(found.job_runner))
            return waiting if waiting is not None and waiting.queue_position == expected_position else None

        waiting = await pipeline.eventually(seen_waiting, "the queue seen by users", 30)
    assert waiting.reason is WaitingReason.CAPACITY
    assert (waiting.limit, waiting.in_use) == (LIMIT, LIMIT)


async def test_2000_triggers_waiting_for_an_asset_all_run_once_it_arrives(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    tenant, count = "tenant-waiting", 2000
    pipeline.start_worker(default_concurrency_limit=count, asset_wait_seconds=600.0)
    async with event_ledger(settings) as events:
        await produce(
            settings, settings.topic_trigger_execution, [trigger_record(tenant, n) for n in range(count)]
        )

        async def all_waiting() -> bool:
            await events.poll()
            return len(events.with_status(tenant, "pending")) == count

        await pipeline.eventually(all_waiting, f"all {count} stored, waiting for their asset", 300)
        await produce(settings, settings.topic_assets, [asset_record(tenant, f"asset-{tenant}")])

        async def all_dispatched() -> bool:
            await events.poll()
            return len(events.with_status(tenant, "dispatched")) == count

        await pipeline.eventually(all_dispatched, f"all {count} dispatched", 600)

    dead_letters = await read_topic(settings, settings.topic_execution_dlq)
    assert dead_letters.records == []
    assert events.with_status(tenant, "failed") == []
    assert await largest_changelog_record(settings, TABLE_PARKED_TRIGGERS) < MAX_CHANGELOG_RECORD
