"""Producers we did not write: transactions (committed, aborted, interleaved with plain records),
every codec, and a batch the worker cannot decode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from execution_stream.operations.lag import lag_report
from execution_stream.settings import Settings
from execution_stream.streaming.partitions import tenant_partition
from tests.support.ledger import asset_record, executions_of, trigger_record
from tests.support.pipeline import Pipeline, read_topic

# On sys.path first, it makes `import cramjam` fail: a worker without the snappy/lz4/zstd codecs.
WITHOUT_CODECS = Path(__file__).parents[1] / "support" / "without_codecs"


def tenants_on_distinct_partitions(count: int, partitions: int) -> list[str]:
    chosen: dict[int, str] = {}
    number = 0
    while len(chosen) < count:
        tenant = f"tenant-{number}"
        chosen.setdefault(tenant_partition(tenant, partitions), tenant)
        number += 1
    return list(chosen.values())


async def send(settings: Settings, records: list[tuple[str, bytes]], codec: str | None = None) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", compression_type=codec
    )
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(settings.topic_trigger_execution, value, key=key.encode())
    finally:
        await producer.stop()


async def send_in_transaction(
    producer: AIOKafkaProducer, topic: str, records: list[tuple[str, bytes]], commit: bool
) -> None:
    await producer.begin_transaction()
    for key, value in records:
        await producer.send_and_wait(topic, value, key=key.encode())
    await (producer.commit_transaction() if commit else producer.abort_transaction())


async def uncommitted_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Per partition of `topic`, how far the group's committed offset is from the log's end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.consumer_group)
        tps = [TopicPartition(topic, p) for p in range(settings.kafka_partitions)]
        ends = await consumer.end_offsets(tps)
        return {
            tp.partition: ends[tp] - (committed[tp].offset if tp in committed else 0)
            for tp in tps
            if ends[tp] > 0
        }
    finally:
        await consumer.stop()
        await admin.close()


async def test_transactional_producers_aborted_triggers_never_run_and_markers_never_stop_commits(
    pipeline: Pipeline, unique: str
) -> None:
    settings = pipeline.settings
    a, b = tenants_on_distinct_partitions(2, settings.kafka_partitions)
    assets = [asset_record(a, f"asset-{a}"), asset_record(b, f"asset-{b}")]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, transactional_id=unique, compression_type="zstd"
    )
    await producer.start()
    try:
        # The asset reader reads a transactional, compressed asset topic too.
        await send_in_transaction(producer, settings.topic_assets, assets, commit=True)
        pipeline.start_worker()
        trigger = settings.topic_trigger_execution
        await send_in_transaction(producer, trigger, [trigger_record(a, 0), trigger_record(a, 1)], True)
        await send_in_transaction(producer, trigger, [trigger_record(a, 2), trigger_record(b, 2)], False)
        await send(settings, [trigger_record(a, 3)])
        await send_in_transaction(producer, trigger, [trigger_record(a, 4)], True)
        await send_in_transaction(producer, trigger, [trigger_record(a, 5)], False)
        await send(settings, [trigger_record(a, 6)], codec="lz4")
        # B's partition ends with an aborted transaction: only its records and marker follow A's.
        await send(settings, [trigger_record(b, 7)])
        await send_in_transaction(producer, trigger, [trigger_record(b, 8)], False)
    finally:
        await producer.stop()

    async def stored() -> dict[str, list[str]] | None:
        found = await executions_of(pipeline.repository, [a, b])
        by_tenant = {t: sorted(e.jit_event_id for e in found if e.tenant_id == t) for t in (a, b)}
        # All six: a batch's puts complete in any order, so five may be any five of them.
        return by_tenant if len(found) >= 6 else None

    assert await pipeline.eventually(stored, "the committed and plain triggers stored") == {
        a: ["event-0", "event-1", "event-3", "event-4", "event-6"],
        b: ["event-7"],
    }

    async def all_committed() -> dict[int, int] | None:
        behind = await uncommitted_offsets(settings, trigger)
        return behind if not any(behind.values()) else None

    assert await pipeline.eventually(all_committed, "commits past every marker", seconds=30) is not None
    report = await lag_report(settings, [settings.consumer_group])
    [group] = report.groups
    lags = {p.partition: p.lag for p in group.partitions if p.topic == trigger}
    partitions = settings.kafka_partitions
    assert (lags[tenant_partition(a, partitions)], lags[tenant_partition(b, partitions)]) == (0, 0)
    assert (await read_topic(settings, settings.topic_execution_dlq)).values() == []
    late = await executions_of(pipeline.repository, [a, b])
    assert sorted((e.tenant_id, e.jit_event_id) for e in late) == [  # nothing aborted came late
        *((a, f"event-{n}") for n in (0, 1, 3, 4, 6)),
        (b, "event-7"),
    ]


async def test_a_batch_the_worker_cannot_decode_holds_only_its_partition_and_is_read_once_it_can(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = pipeline.settings
    tenants = tenants_on_distinct_partitions(3, settings.kafka_partitions)
    held, others = tenants[0], tenants[1:]
    await send_assets(settings, tenants)
    monkeypatch.setenv("PYTHONPATH", str(WITHOUT_CODECS))
    first = pipeline.start_worker()
    await send(settings, [trigger_record(held, 0)], codec="zstd")
    await send(settings, [trigger_record(held, 1)])
    await send(settings, [trigger_record(t, 0) for t in others])

    async def others_stored() -> list[str] | None:
        found = await executions_of(pipeline.repository, tenants)
        return sorted(e.tenant_id for e in found) if len(found) >= 2 else None

    assert await pipeline.eventually(others_stored, "the other partitions' triggers stored") == sorted(others)
    assert first.process is not None
    assert first.process.poll() is None, "the worker must keep running"
    [line] = [line for line in log_lines(first.log_path) if "cannot be decoded" in line["message"]]
    assert (line["topic"], line["partition"], line["offset"]) == (
        settings.topic_trigger_execution,
        tenant_partition(held, settings.kafka_partitions),
        0,
    )
    assert "UnsupportedCodecError" in line["error"]
    assert await executions_of(pipeline.repository, [held]) == []

    first.stop()
    monkeypatch.delenv("PYTHONPATH")
    pipeline.start_worker()

    async def held_stored() -> list[str] | None:
        found = sorted(e.jit_event_id for e in await executions_of(pipeline.repository, [held]))
        return found if len(found) == 2 else None

    assert await pipeline.eventually(held_stored, "the held partition read by a worker with codecs") == [
        "event-0",
        "event-1",
    ]


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The worker's JSON lines (a terminal escape may precede one)."""
    return [json.loads(line[line.index("{") :]) for line in path.read_text().splitlines() if "{" in line]


async def send_assets(settings: Settings, tenants: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for tenant in tenants:
            key, value = asset_record(tenant, f"asset-{tenant}")
            await producer.send_and_wait(settings.topic_assets, value, key=key.encode())
    finally:
        await producer.stop()
