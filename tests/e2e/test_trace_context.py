"""One trigger followed across topics by its W3C trace context, against the real broker."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from execution_stream.domain.identity import derive_execution_id
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.trace import valid_traceparent
from execution_stream.settings import Settings
from tests.support.factories import trigger_event
from tests.support.ledger import asset_record, executions_of
from tests.support.pipeline import Pipeline, TopicReader, as_json, produce, read_topic

TENANT = "tenant-a"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
RUNNERS_OWN = "00-11111111111111111111111111111111-2222222222222222-01"
BROKEN_TRIGGERS_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
Headers = list[tuple[str, bytes]]


async def send(settings: Settings, topic: str, value: bytes, headers: Headers) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=TENANT.encode(), value=value, headers=headers)
    finally:
        await producer.stop()


def trigger(number: int) -> bytes:
    event = trigger_event(TENANT, f"event-{number}", f"asset-{TENANT}", job_runner="jit_runner")
    return as_json(event.model_dump(mode="json"))


def execution_id(number: int) -> str:
    event = trigger_event(TENANT, f"event-{number}", f"asset-{TENANT}")
    return derive_execution_id(
        TENANT, event.jit_event_id, event.asset_id, event.workflow_slug, event.job_name
    )


async def report(pipeline: Pipeline, number: int, status: str, headers: Headers) -> None:
    update = {
        "tenant_id": TENANT,
        "jit_event_id": f"event-{number}",
        "execution_id": execution_id(number),
        "status": status,
        "at": f"2026-01-01T00:00:0{number}",
    }
    await send(pipeline.settings, pipeline.settings.topic_execution_status, as_json(update), headers)


async def in_status(pipeline: Pipeline, status: ExecutionStatus, count: int) -> list[Execution] | None:
    found = [e for e in await executions_of(pipeline.repository, [TENANT]) if e.status is status]
    return found if len(found) == count else None


async def dispatched(pipeline: Pipeline, number: int) -> Execution | None:
    found = await in_status(pipeline, ExecutionStatus.DISPATCHED, 1)
    return found[0] if found and found[0].execution_id == execution_id(number) else None


def headers_by_execution(readers: Sequence[TopicReader]) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Per execution id, each record's topic and headers (records about no one execution are left out)."""
    found: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
    for reader in readers:
        for record in reader.records:
            value = json.loads(record.value) if record.value else {}
            if "execution_id" in value:
                found[value["execution_id"]].append((reader.topic, reader.headers_of(record)))
    return found


async def test_a_triggers_traceparent_is_on_every_record_it_causes_and_one_is_made_when_absent(
    pipeline: Pipeline,
) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(TENANT, f"asset-{TENANT}")])
    pipeline.start_worker(tenant_concurrency_limits={TENANT: 1})
    traced = [("traceparent", TRACEPARENT.encode()), ("tracestate", TRACESTATE.encode())]
    await send(settings, settings.topic_trigger_execution, trigger(0), traced)
    await send(settings, settings.topic_trigger_execution, trigger(1), [])
    await send(
        settings, settings.topic_trigger_execution, b"{", [("traceparent", BROKEN_TRIGGERS_TRACE.encode())]
    )

    # The untraced trigger waits for the slot; the traced one's completion admits it.
    await pipeline.eventually(lambda: dispatched(pipeline, 0), "the first dispatched")
    await report(pipeline, 0, "completed", [("traceparent", RUNNERS_OWN.encode())])
    await pipeline.eventually(lambda: dispatched(pipeline, 1), "the second dispatched")
    await report(pipeline, 1, "completed", [])
    # A report the lifecycle refuses is logged, with the trace-id of the execution's trigger.
    await report(pipeline, 0, "running", [("traceparent", RUNNERS_OWN.encode())])
    stored = await pipeline.eventually(
        lambda: in_status(pipeline, ExecutionStatus.COMPLETED, 2), "both completed"
    )

    events = TopicReader(settings, settings.topic_execution_events)
    await events.start()
    try:
        await events.wait_for(lambda r: len(r.records) >= 6, 60, "the six execution events")
    finally:
        await events.stop()
    topics = (
        settings.topic_allocate_runner_resource,
        settings.topic_enrich_and_dispatch,
        settings.topic_runner_jobs,
    )
    readers = [*[await read_topic(settings, topic) for topic in topics], events]
    by_execution = headers_by_execution(readers)

    first, second = execution_id(0), execution_id(1)
    assert {e.execution_id: e.traceparent for e in stored}[first] == TRACEPARENT
    seen_topics = {topic for topic, _ in by_execution[first]}
    assert seen_topics == {*topics, settings.topic_execution_events}
    assert {(h.get("traceparent"), h.get("tracestate")) for _, h in by_execution[first]} == {
        (TRACEPARENT, TRACESTATE)
    }
    # The records of the trigger without one carry one new trace context, valid and its own.
    made = {h.get("traceparent") for _, h in by_execution[second]}
    assert {topic for topic, _ in by_execution[second]} == seen_topics
    [new] = made
    assert new is not None
    assert valid_traceparent(new) == new
    assert new.startswith("00-")
    assert new.endswith("-01")
    assert new[3:35] != TRACEPARENT[3:35]
    assert all("tracestate" not in h for _, h in by_execution[second])

    dead_letters = await read_topic(settings, settings.topic_execution_dlq)
    assert [dead_letters.headers_of(r)["traceparent"] for r in dead_letters.records] == [
        BROKEN_TRIGGERS_TRACE
    ]
    await pipeline.eventually(lambda: refused_line(pipeline, first), "the refused report's log line")


async def refused_line(pipeline: Pipeline, execution: str) -> dict[str, str] | None:
    for line in pipeline.workers[0].log_path.read_text(errors="replace").splitlines():
        entry = log_entry(line)
        if entry.get("message") == "status transition refused" and entry.get("execution_id") == execution:
            assert entry["trace_id"] == TRACEPARENT[3:35]
            return entry
    return None


def log_entry(line: str) -> dict[str, str]:
    """A JSON log line, after whatever a terminal escape put before it; {} for any other line."""
    try:
        entry = json.loads(line[line.find("{") :])
    except json.JSONDecodeError:
        return {}
    return entry if isinstance(entry, dict) else {}
