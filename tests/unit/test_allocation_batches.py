"""The allocate agent takes batches: the same records give the same decisions, effects and table
whether they come one at a time or together, and the table waits until the effects are sent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from execution_stream.domain import commits
from execution_stream.pipeline.messages import (
    AllocationLease,
    AllocationRelease,
    AllocationRequest,
    Destination,
    Effects,
    SourceRecord,
    encode,
)
from tests.support.pipeline_steps import allocation_step, sent

TENANTS = ("tenant-a", "tenant-b")
EXECUTIONS = tuple(f"execution-{n}" for n in range(6))
RUNNERS = ("github_actions", "jit_runner")
TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


def request(tenant: str, execution_id: str) -> AllocationRequest:
    runner = RUNNERS[int(execution_id[-1]) % 2]
    return AllocationRequest(
        tenant_id=tenant, execution_id=execution_id, jit_event_id="event", job_runner=runner, **TRACE
    )


def release(tenant: str, execution_id: str) -> AllocationRelease:
    return AllocationRelease(tenant_id=tenant, execution_id=execution_id)


def lease(tenant: str, execution_id: str) -> AllocationLease:
    runner = RUNNERS[int(execution_id[-1]) % 2]
    deadline = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=1)
    return AllocationLease(
        tenant_id=tenant, execution_id=execution_id, job_runner=runner, deadline_at=deadline
    )


messages = st.lists(
    st.builds(
        lambda make, tenant, execution: make(tenant, execution),
        st.sampled_from([request, request, release, lease]),
        st.sampled_from(TENANTS),
        st.sampled_from(EXECUTIONS),
    ),
    max_size=40,
)


Message = AllocationRequest | AllocationRelease | AllocationLease
Outcome = tuple[dict[str, Any], list[tuple[Destination, str | None, bytes]]]


def records(batch: list[Message]) -> list[SourceRecord]:
    return [
        SourceRecord("allocate-runner-resource", 0, offset, m.tenant_id.encode(), encode(m))
        for offset, m in enumerate(batch)
    ]


def handled(step_records: list[SourceRecord], limit: int, split: list[int]) -> Outcome:
    step = allocation_step(limit)
    outgoing: list[tuple[Destination, str | None, bytes]] = []
    start = 0
    for size in [*split, len(step_records)]:
        batch = step_records[start : start + size]
        start += len(batch)
        if batch:
            effects = asyncio.run(step.handle(batch))
            effects.store()
            outgoing += [(o.destination, o.key, o.value) for o in effects.outgoing]
    return dict(step.table), outgoing


@settings(max_examples=150, deadline=None)
@given(messages, st.integers(1, 3), st.lists(st.integers(1, 10), max_size=6))
def test_a_batch_decides_as_the_same_records_one_at_a_time(
    batch: list[Message], limit: int, split: list[int]
) -> None:
    given_records = records(batch)

    one_at_a_time = handled(given_records, limit, [1] * len(given_records))
    in_batches = handled(given_records, limit, split)

    assert in_batches == one_at_a_time


def test_the_table_is_written_only_when_the_batch_is_stored_and_each_sees_those_before() -> None:
    step = allocation_step(limit=1)
    batch = records([request("tenant-a", "execution-0"), request("tenant-a", "execution-2")])

    effects: Effects = asyncio.run(step.handle(batch))

    assert step.table == {}
    assert [m["execution_id"] for m in sent(effects, Destination.ENRICH)] == ["execution-0"]
    assert [write.source for write in effects.stores] == batch
    effects.store()
    line = step.allocator.line("tenant-a", "github_actions")
    assert (line.line.in_use, line.line.queued) == (1, 1)


def test_pending_reads_its_writes_over_the_table_and_forgets_deleted_keys() -> None:
    table = {"kept": 1, "changed": 2, "deleted": 3}
    pending = commits.Pending(table)

    pending.apply([commits.Write("changed", 20), commits.Write("deleted", None), commits.Write("new", 4)])

    assert dict(pending) == {"kept": 1, "changed": 20, "new": 4}
    assert pending.get("deleted") is None
    assert "deleted" not in pending
    assert len(pending) == 3
    assert table == {"kept": 1, "changed": 2, "deleted": 3}
