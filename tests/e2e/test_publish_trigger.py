"""`execution-stream publish-trigger` as a producer runs it: valid documents are published keyed by
their tenant and become executions; one invalid document and nothing at all is published."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from execution_stream.adapters.kafka_topic_reader import partitions_of
from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.domain.models import ExecutionStatus
from execution_stream.provisioning import provision
from execution_stream.settings import Settings
from tests.support.factories import asset, trigger_event
from tests.support.ledger import executions_of
from tests.support.pipeline import Pipeline, read_topic

A, B = "tenant-a", "tenant-b"
PUBLISHED = re.compile(
    r"published (?P<topic>\S+)\[(?P<partition>\d+)\]@(?P<offset>\d+) key=(?P<key>\S+) (?P<label>\S+)"
)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


async def publish_trigger(settings: Settings, *arguments: str, stdin: str | None = None) -> Run:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "execution_stream", "publish-trigger", *arguments),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **settings.to_environment()},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate((stdin or "").encode()), timeout=120)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def published(run: Run) -> list[dict[str, str]]:
    """The fields of each `published ...` line; a line of another shape fails the test."""
    lines = [PUBLISHED.fullmatch(line) for line in run.stdout.splitlines()]
    assert all(lines), run.stdout
    return [line.groupdict() for line in lines if line is not None]


def trigger(tenant: str, number: int) -> dict[str, Any]:
    event = trigger_event(tenant, f"event-{number}", f"asset-{tenant}", job_runner="jit_runner")
    document: dict[str, Any] = event.model_dump(mode="json", exclude={"created_at"})
    return document


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    partitions = await partitions_of(settings.kafka_bootstrap_servers, [topic])
    assert partitions, f"topic {topic} does not exist"
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


async def test_published_documents_are_keyed_and_become_executions(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    settings = pipeline.settings
    assets = tmp_path / "assets.json"
    assets.write_text(json.dumps([asset(t, f"asset-{t}").model_dump(mode="json") for t in (A, B)], indent=2))
    published_assets = await publish_trigger(settings, "--asset", str(assets))
    assert (published_assets.code, published_assets.stderr) == (0, "")
    assert [line["label"] for line in published(published_assets)] == [f"tenant_id={A}", f"tenant_id={B}"]
    pipeline.start_worker()
    documents = [trigger(A, 1), trigger(B, 1), trigger(A, 2)]
    lines = "\n".join(json.dumps(document) for document in documents) + "\n"

    run = await publish_trigger(settings, "-", stdin=lines)

    assert (run.code, run.stderr) == (0, "")
    printed = published(run)
    assert [(line["topic"], line["key"], line["label"]) for line in printed] == [
        (settings.topic_trigger_execution, A, "jit_event_id=event-1"),
        (settings.topic_trigger_execution, B, "jit_event_id=event-1"),
        (settings.topic_trigger_execution, A, "jit_event_id=event-2"),
    ]
    on_topic = {
        (r.partition, r.offset): r
        for r in (await read_topic(settings, settings.topic_trigger_execution)).records
    }
    for line, document in zip(printed, documents, strict=True):
        record = on_topic[(int(line["partition"]), int(line["offset"]))]
        assert (record.key, json.loads(record.value)) == (document["tenant_id"].encode(), document)

    async def dispatched() -> list[tuple[str, str]] | None:
        stored = await executions_of(pipeline.repository, [A, B])
        done = len(stored) == 3 and all(e.status is ExecutionStatus.DISPATCHED for e in stored)
        return sorted((e.tenant_id, e.jit_event_id) for e in stored) if done else None

    assert await pipeline.eventually(dispatched, "three executions dispatched") == [
        (A, "event-1"),
        (A, "event-2"),
        (B, "event-1"),
    ]


async def test_one_invalid_document_and_nothing_is_published(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    await provision(isolated_settings)
    topic = isolated_settings.topic_trigger_execution
    missing_steps = {name: value for name, value in trigger(B, 2).items() if name != "steps"}
    path = tmp_path / "triggers.json"
    path.write_text(json.dumps([trigger(A, 1), missing_steps, trigger(A, 3)]))
    before = await end_offsets(isolated_settings, topic)

    run = await publish_trigger(isolated_settings, str(path))

    assert (run.code, run.stdout) == (1, "")
    assert run.stderr.splitlines() == ["execution-stream publish-trigger: document 2: steps: Field required"]
    assert await end_offsets(isolated_settings, topic) == before
    assert (await read_topic(isolated_settings, topic)).records == []


async def test_empty_input_is_refused(isolated_settings: Settings) -> None:
    run = await publish_trigger(isolated_settings, "-", stdin=" \n")

    assert (run.code, run.stdout) == (1, "")
    assert run.stderr.splitlines() == ["execution-stream publish-trigger: the input holds no document"]


async def test_a_topic_that_does_not_exist_is_named(isolated_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "trigger.json"
    path.write_text(json.dumps(trigger(A, 1)))

    run = await publish_trigger(isolated_settings, str(path))

    assert (run.code, run.stdout) == (1, "")
    assert run.stderr.splitlines() == [
        f"execution-stream publish-trigger: topic {isolated_settings.topic_trigger_execution!r} does not "
        f"exist at {isolated_settings.kafka_bootstrap_servers}: run `execution-stream init`"
    ]
    servers = isolated_settings.kafka_bootstrap_servers
    assert await partitions_of(servers, [isolated_settings.topic_trigger_execution]) == []  # not created


async def test_a_broker_that_does_not_answer_is_one_line_within_the_connect_timeout(
    stack_settings: Settings, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{free_loopback_port()}"
    settings = stack_settings.model_copy(
        update={"kafka_bootstrap_servers": dead, "kafka_connect_timeout_seconds": 3.0}
    )
    path = tmp_path / "trigger.json"
    path.write_text(json.dumps(trigger(A, 1)))
    started = time.monotonic()

    run = await publish_trigger(settings, str(path))

    assert time.monotonic() - started < 20
    assert (run.code, run.stdout) == (1, "")
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith(f"execution-stream publish-trigger: cannot reach the Kafka broker at {dead}")
