"""Wire compatibility proven by a client we did not write: Apache Kafka's own Java console producer
sends triggers with every codec Kafka has, and its console consumer reads the jobs on `runner-jobs`."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from execution_stream.domain.identity import execution_id_for
from execution_stream.domain.models import ExecutionStatus, TriggerEvent
from execution_stream.domain.store import ExecutionKey
from tests.support.factories import trigger_event
from tests.support.java_clients import ConsumedRecord, KafkaConsoleClients
from tests.support.ledger import asset_record
from tests.support.pipeline import Pipeline, as_json, produce, read_topic
from tests.support.workload import TOPIC_FED

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
TENANTS = ("tenant-a", "tenant-b", "tenant-c")
CONSUMER_IDLE_MS = 2000


def codec_triggers(codec: str) -> list[TriggerEvent]:
    """One trigger per tenant, named after the codec it is sent with."""
    return [
        trigger_event(tenant, f"{codec}-event-{number}", f"asset-{tenant}", job_runner=TOPIC_FED)
        for number, tenant in enumerate(TENANTS)
    ]


def trigger_records(triggers: list[TriggerEvent]) -> list[tuple[str, bytes]]:
    return [(t.tenant_id, as_json(t.model_dump(mode="json"))) for t in triggers]


async def produce_with_every_codec(
    clients: KafkaConsoleClients, topic: str, triggers: dict[str, list[TriggerEvent]]
) -> None:
    """One console producer per codec, all at once."""
    runs = await asyncio.gather(
        *(
            asyncio.to_thread(clients.produce, topic, trigger_records(sent), codec)
            for codec, sent in triggers.items()
        )
    )
    for codec, run in zip(triggers, runs, strict=True):
        run.raise_unless_clean(f"the console producer with codec {codec}")


async def undispatched(pipeline: Pipeline, triggers: dict[str, list[TriggerEvent]]) -> dict[str, list[str]]:
    """Per codec, the triggers whose execution is not stored as dispatched (yet)."""
    waiting: dict[str, list[str]] = {}
    for codec, sent in triggers.items():
        for trigger in sent:
            key = ExecutionKey(trigger.tenant_id, trigger.jit_event_id, execution_id_for(trigger))
            stored = await pipeline.repository.get(key)
            if stored is None or stored.status is not ExecutionStatus.DISPATCHED:
                waiting.setdefault(codec, []).append(trigger.jit_event_id)
    return waiting


async def wait_until_dispatched(pipeline: Pipeline, triggers: dict[str, list[TriggerEvent]]) -> None:
    async def all_dispatched() -> bool:
        return not await undispatched(pipeline, triggers)

    try:
        await pipeline.eventually(all_dispatched, "every trigger's execution dispatched", seconds=30)
    except AssertionError as failure:
        still = await undispatched(pipeline, triggers)
        raise AssertionError(f"{failure}; not dispatched, per codec: {still}\n{pipeline.logs()}") from None


def job_mismatches(jobs: list[ConsumedRecord], triggers: dict[str, list[TriggerEvent]]) -> dict[str, str]:
    """Per codec, what is wrong with its triggers' jobs: not exactly one, or not keyed by the tenant."""
    documents = [(job.key, json.loads(job.value)) for job in jobs]
    counts = Counter(document["execution_id"] for _, document in documents)
    keys = {document["execution_id"]: key for key, document in documents}
    mismatches: dict[str, str] = {}
    for codec, sent in triggers.items():
        wrong = [
            f"{t.jit_event_id}: {counts[execution_id_for(t)]} jobs, key {keys.get(execution_id_for(t))!r}"
            for t in sent
            if counts[execution_id_for(t)] != 1 or keys[execution_id_for(t)] != t.tenant_id
        ]
        if wrong:
            mismatches[codec] = "; ".join(wrong)
    return mismatches


async def test_kafka_console_clients_send_triggers_with_every_codec_and_read_their_jobs(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    settings = pipeline.settings
    clients = KafkaConsoleClients(settings.kafka_bootstrap_servers, tmp_path / "java-clients")
    await produce(settings, settings.topic_assets, [asset_record(t, f"asset-{t}") for t in TENANTS])
    pipeline.start_worker()
    triggers = {codec: codec_triggers(codec) for codec in CODECS}

    await produce_with_every_codec(clients, settings.topic_trigger_execution, triggers)
    await wait_until_dispatched(pipeline, triggers)
    consumption = await asyncio.to_thread(clients.consume, settings.topic_runner_jobs, CONSUMER_IDLE_MS)

    consumption.raise_unless_clean("the console consumer of runner-jobs")
    run, jobs = consumption.run, consumption.records
    sent = sum(len(s) for s in triggers.values())
    assert len(jobs) == sent, f"{len(jobs)} jobs read for {sent} triggers\n{run.report()}"
    assert job_mismatches(jobs, triggers) == {}, run.report()
    assert {json.loads(job.value)["job_runner"] for job in jobs} == {TOPIC_FED}
    dead_letters = await read_topic(settings, settings.topic_execution_dlq)
    assert dead_letters.values() == [], "triggers sent by the console producer were dead-lettered"
