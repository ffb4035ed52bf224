"""The pipeline as a user sees it: capacity per tenant, duplicates, bad input."""

from __future__ import annotations

import json
from collections import Counter

from aiokafka import AIOKafkaProducer

from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.streaming.partitions import tenant_partition
from execution_stream.topology import TABLE_ALLOCATIONS, changelog_topic
from tests.support.ledger import asset_record, executions_of, slot_holders, trigger_record
from tests.support.pipeline import Pipeline, TopicReader, as_json, produce, read_topic

A, B = "tenant-a", "tenant-b"


def by_status(executions: list[Execution], tenant: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for execution in sorted(executions, key=lambda e: e.jit_event_id):
        if execution.tenant_id == tenant:
            found.setdefault(execution.status.value, []).append(execution.jit_event_id)
    return found


async def complete(pipeline: Pipeline, execution: Execution) -> None:
    update = {
        "tenant_id": execution.tenant_id,
        "jit_event_id": execution.jit_event_id,
        "execution_id": execution.execution_id,
        "status": "completed",
        "at": "2026-01-01T00:00:00",
    }
    await produce(
        pipeline.settings, pipeline.settings.topic_execution_status, [(execution.tenant_id, as_json(update))]
    )


async def test_a_tenant_at_its_limit_waits_in_order_and_does_not_delay_another(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(
        settings, settings.topic_assets, [asset_record(A, f"asset-{A}"), asset_record(B, f"asset-{B}")]
    )
    pipeline.start_worker(tenant_concurrency_limits={A: 2})
    await produce(settings, settings.topic_trigger_execution, [trigger_record(A, n) for n in range(5)])
    await produce(settings, settings.topic_trigger_execution, [trigger_record(B, n) for n in range(2)])

    async def settled() -> dict[str, dict[str, list[str]]] | None:
        stored = await executions_of(pipeline.repository, [A, B])
        statuses = {tenant: by_status(stored, tenant) for tenant in (A, B)}
        done = len(statuses[A].get("dispatched", [])) == 2 and len(statuses[B].get("dispatched", [])) == 2
        return statuses if done and len(stored) == 7 else None

    statuses = await pipeline.eventually(settled, "two of A's and both of B's dispatched")
    assert statuses[A] == {"dispatched": ["event-0", "event-1"], "pending": ["event-2", "event-3", "event-4"]}
    assert statuses[B] == {"dispatched": ["event-0", "event-1"]}

    first = next(e for e in await executions_of(pipeline.repository, [A]) if e.jit_event_id == "event-0")
    await complete(pipeline, first)

    async def oldest_pending_dispatched() -> dict[str, list[str]] | None:
        now = by_status(await executions_of(pipeline.repository, [A]), A)
        return now if now.get("dispatched") == ["event-1", "event-2"] else None

    assert await pipeline.eventually(oldest_pending_dispatched, "the oldest pending of A dispatched") == {
        "completed": ["event-0"],
        "dispatched": ["event-1", "event-2"],
        "pending": ["event-3", "event-4"],
    }
    assert (await slot_holders(settings))[A] == {"jit_runner": 2}


async def test_a_trigger_delivered_three_times_is_one_execution_one_job_one_slot(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.start_worker(tenant_concurrency_limits={A: 1})
    await produce(
        settings, settings.topic_trigger_execution, [trigger_record(A, 0)] * 3 + [trigger_record(A, 1)]
    )
    jobs = TopicReader(settings, settings.topic_runner_jobs)
    await jobs.start()
    try:

        async def both_stored() -> list[Execution] | None:
            stored = await executions_of(pipeline.repository, [A])
            return (
                stored
                if len(stored) == 2 and any(e.status is ExecutionStatus.DISPATCHED for e in stored)
                else None
            )

        await pipeline.eventually(both_stored, "the two executions stored, one dispatched")
        await jobs.wait_for(lambda r: len(r.records) >= 1, 30, "a job on runner-jobs")
        for _ in range(10):
            await jobs.poll()
    finally:
        await jobs.stop()

    assert by_status(await executions_of(pipeline.repository, [A]), A) == {
        "dispatched": ["event-0"],
        "pending": ["event-1"],
    }
    assert [job["jit_event_id"] for job in jobs.values()] == ["event-0"]
    assert (await slot_holders(settings))[A] == {"jit_runner": 1}


async def test_bad_records_go_to_the_dead_letter_topic_and_the_good_ones_flow(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.github.set_faults(refuse_repos=["refused-repo"])
    pipeline.start_worker(asset_wait_seconds=2.0)
    missing_tenant = trigger_record(A, 2)[1].replace(b'"tenant_id": "tenant-a", ', b"")
    refused = trigger_record(
        A,
        4,
        runner="github_actions",
        additional_attributes={"workflow_repository": "refused-repo"},
    )
    # Another tenant's installation: the asset names where its jobs go, not the trigger.
    foreign = trigger_record(A, 6, runner="github_actions", additional_attributes={"installation_id": "7"})
    unknown_asset = trigger_record(A, 3, asset_id="asset-nobody-knows")
    await produce(
        settings,
        settings.topic_trigger_execution,
        [
            (A, b"\x00\xffnot json"),
            (A, missing_tenant),
            unknown_asset,
            refused,
            foreign,
            trigger_record(A, 5),
        ],
    )
    dlq = TopicReader(settings, settings.topic_execution_dlq)
    await dlq.start()
    try:
        await dlq.wait_for(lambda r: len(r.records) >= 5, 60, "five dead letters")
    finally:
        await dlq.stop()

    reasons = Counter(dlq.headers_of(record)["dlq.reason"] for record in dlq.records)
    assert reasons == Counter(
        ["not_json", "invalid", "asset_not_found", "dispatch_refused", "asset_mismatch"]
    )
    invalid = next(r for r in dlq.records if dlq.headers_of(r)["dlq.reason"] == "invalid")
    assert "tenant_id" in dlq.headers_of(invalid)["dlq.message"]
    assert invalid.value == missing_tenant
    assert dlq.headers_of(invalid)["dlq.topic"] == settings.topic_trigger_execution

    async def good_dispatched_and_refused_failed() -> dict[str, list[str]] | None:
        now = by_status(await executions_of(pipeline.repository, [A]), A)
        wanted = {"dispatched": ["event-5"], "failed": ["event-3", "event-4"]}
        return now if now == wanted else None

    await pipeline.eventually(good_dispatched_and_refused_failed, "the good trigger dispatched")
    stored = {e.jit_event_id: e for e in await executions_of(pipeline.repository, [A])}
    refused_error, waited_error = stored["event-4"].error, stored["event-3"].error
    assert refused_error is not None
    assert "422" in refused_error
    # The trigger that waited for its asset in vain was stored at once, and fails with the reason.
    assert waited_error is not None
    assert waited_error.startswith("asset_not_found: ")
    assert pipeline.workers[0].process is not None
    assert pipeline.workers[0].process.poll() is None


async def test_a_trigger_waits_for_its_asset_and_a_deleted_asset_is_forgotten(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    pipeline.start_worker(asset_wait_seconds=60.0)
    await produce(settings, settings.topic_trigger_execution, [trigger_record(A, 0)])
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])

    async def dispatched() -> dict[str, list[str]] | None:
        now = by_status(await executions_of(pipeline.repository, [A]), A)
        return now if now == {"dispatched": ["event-0"]} else None

    await pipeline.eventually(dispatched, "the parked trigger dispatched once its asset came")

    await produce(settings, settings.topic_assets, [(f"asset-{A}", None)])
    await produce(settings, settings.topic_trigger_execution, [trigger_record(A, 1)])
    await produce(settings, settings.topic_assets, [asset_record(B, f"asset-{B}")])
    await produce(settings, settings.topic_trigger_execution, [trigger_record(B, 0)])

    async def b_dispatched() -> bool:
        return by_status(await executions_of(pipeline.repository, [B]), B) == {"dispatched": ["event-0"]}

    await pipeline.eventually(b_dispatched, "a later trigger with a known asset dispatched")
    stored = await executions_of(pipeline.repository, [A])
    # The trigger of the deleted asset is stored, seen waiting for it, and asks for no slot.
    assert by_status(stored, A) == {"dispatched": ["event-0"], "pending": ["event-1"]}
    assert [e.waiting_for_asset for e in stored if e.jit_event_id == "event-1"] == [f"asset-{A}"]


async def test_a_job_that_never_reports_fails_with_timeout_and_frees_its_slot(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.start_worker(
        tenant_concurrency_limits={A: 1}, job_timeout_seconds=3, watchdog_interval_seconds=0.5
    )
    await produce(settings, settings.topic_trigger_execution, [trigger_record(A, 0), trigger_record(A, 1)])

    async def first_timed_out() -> dict[str, list[str]] | None:
        now = by_status(await executions_of(pipeline.repository, [A]), A)
        return now if now.get("failed") == ["event-0"] and now.get("dispatched") == ["event-1"] else None

    await pipeline.eventually(first_timed_out, "the silent job failed and the next one dispatched")
    failed = next(e for e in await executions_of(pipeline.repository, [A]) if e.jit_event_id == "event-0")
    assert failed.error == "timeout"


async def test_an_internal_record_whose_key_is_not_its_tenant_is_dead_lettered_and_the_agent_goes_on(
    pipeline: Pipeline,
) -> None:
    """A null, non-UTF-8 or foreign key on allocate-runner-resource would put the tenant's state on
    another partition: such a record is dead-lettered, and the next ones are processed."""
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.start_worker()
    request = as_json(
        {"type": "request", "tenant_id": A, "jit_event_id": "e", "execution_id": "x" * 32, "job_runner": "r"}
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key in (None, b"\xff\xfe", B.encode()):
            await producer.send_and_wait(settings.topic_allocate_runner_resource, key=key, value=request)
    finally:
        await producer.stop()
    await produce(settings, settings.topic_trigger_execution, [trigger_record(A, 0)])

    async def dispatched() -> bool:
        return by_status(await executions_of(pipeline.repository, [A]), A) == {"dispatched": ["event-0"]}

    await pipeline.eventually(dispatched, "a trigger after the bad records dispatched")
    dlq = await read_topic(settings, settings.topic_execution_dlq)
    headers = [dlq.headers_of(record) for record in dlq.records]
    assert [h["dlq.reason"] for h in headers] == ["invalid"] * 3
    assert {h["dlq.topic"] for h in headers} == {settings.topic_allocate_runner_resource}
    assert all("key must be its tenant_id" in h["dlq.message"] for h in headers)


async def test_batched_allocation_writes_go_to_each_tenants_changelog_partition(pipeline: Pipeline) -> None:
    """The allocate agent takes records of many partitions in one batch; each record's table writes
    must reach its own partition of the changelog, or a worker recovering that partition misses them."""
    settings = pipeline.settings
    tenants = [f"tenant-{letter}" for letter in "cdefgh"]
    await produce(settings, settings.topic_assets, [asset_record(t, f"asset-{t}") for t in tenants])
    pipeline.start_worker(default_concurrency_limit=2)
    await produce(
        settings, settings.topic_trigger_execution, [trigger_record(t, n) for n in range(3) for t in tenants]
    )

    async def settled() -> dict[str, dict[str, int]] | None:
        holders = await slot_holders(settings)
        return holders if all(holders.get(t) == {"jit_runner": 2} for t in tenants) else None

    await pipeline.eventually(settled, "two slots held by each tenant")

    changelog = await read_topic(settings, changelog_topic(settings.consumer_group, TABLE_ALLOCATIONS))
    partitions = {t: tenant_partition(t, settings.kafka_partitions) for t in tenants}
    assert len(set(partitions.values())) > 1
    misplaced = [
        (key, record.partition)
        for record in changelog.records
        if partitions[(key := json.loads(record.key)).split("#")[1]] != record.partition
    ]
    assert misplaced == []
    assert {json.loads(r.key).split("#")[1] for r in changelog.records} == set(tenants)
