"""Fault 6: poison and hostile records mixed into a steady stream of good ones.

Each poison goes to the dead-letter topic, with its original bytes and a reason; none stops its
partition (they share the good records' keys, so their partitions); the good records interleaved
with them, odd ones included (unknown fields, emoji and RTL marks in ids, a 200 KB attribute), all
become executions and are dispatched once.

Records over Kafka's size limit never reach the service: see `test_a_record_over_a_megabyte_...`.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from execution_stream.settings import Settings
from tests.support.factories import trigger_event
from tests.support.fault_run import FaultRun, assert_no_loss_or_duplication, headers_of, read_topic
from tests.support.pipeline import Pipeline
from tests.support.workload import PlannedTrigger, plan_triggers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

TRIGGERS = 160
TENANT = "tenant-1"
KB = 1024


def document(number: int, **changes: Any) -> dict[str, Any]:
    """A valid trigger document of TENANT, as JSON-ready data, with `changes` applied."""
    attributes = {"owner": "acme-1", "original_repository": "repo-1", "ratio": 0.5}  # as its asset says
    event = trigger_event(
        TENANT,
        f"poison-{number}",
        f"asset-{TENANT}",
        job_runner="jit_runner",
        additional_attributes=attributes,
    )
    return {**event.model_dump(mode="json"), **changes}


def raw(number: int, replace: str, by: str, **changes: Any) -> bytes:
    """A document whose JSON text has `replace` replaced by `by` (escapes JSON cannot produce)."""
    text = json.dumps(document(number, **changes))
    assert replace in text
    return text.replace(replace, by, 1).encode()


def as_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def poisons() -> list[tuple[str, bytes | None, str]]:
    """(what, the record's value, the DLQ reason it must get)."""
    future = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    return [
        ("binary", b"\x00\xffnot json", "not_json"),
        ("empty", b"", "not_json"),
        ("truncated json", as_bytes(document(1))[:-7], "not_json"),
        ("tombstone", None, "invalid"),
        ("json array", b"[1, 2]", "invalid"),
        ("json null", b"null", "invalid"),
        ("json string", b'"trigger"', "invalid"),
        ("tenant_id a number", as_bytes(document(2, tenant_id=5)), "invalid"),
        ("steps a string", as_bytes(document(3, steps="run everything")), "invalid"),
        ("no steps", as_bytes(document(4, steps=[])), "invalid"),
        ("attributes a list", as_bytes(document(5, additional_attributes=[1])), "invalid"),
        ("created_at a word", as_bytes(document(6, created_at="yesterday")), "invalid"),
        ("900 KB job_name", as_bytes(document(7, job_name="j" * 900 * KB)), "invalid"),
        (
            "900 KB attribute",
            as_bytes(document(8, additional_attributes={"x": "v" * 900 * KB})),
            "store_refused",
        ),
        ("lone surrogate in an id", raw(9, "poison-9", "poison-9\\ud800"), "invalid"),
        ("lone surrogate in an attribute", raw(10, '"ratio"', '"\\udc00ratio"'), "invalid"),
        ("NUL in an id", as_bytes(document(11, jit_event_id="poison\x0011")), "invalid"),
        ("NUL in a name", as_bytes(document(12, job_name="job\x00name")), "invalid"),
        ("# in tenant_id", as_bytes(document(13, tenant_id=f"{TENANT}#x")), "invalid"),
        ("# in jit_event_id", as_bytes(document(14, jit_event_id="event#14")), "invalid"),
        ("# in asset_id", as_bytes(document(15, asset_id="asset#15")), "invalid"),
        ("# in plan_item_slug", as_bytes(document(16, plan_item_slug="item#16")), "invalid"),
        ("negative created_at", as_bytes(document(17, created_at=-1)), "invalid"),
        ("created_at in 1970", as_bytes(document(18, created_at="1970-01-01T00:00:00Z")), "invalid"),
        ("created_at in 9999", as_bytes(document(19, created_at="9999-12-31T23:59:59Z")), "invalid"),
        ("created_at 3 h ahead", as_bytes(document(20, created_at=future)), "invalid"),
        ("NaN attribute", raw(21, '"ratio": 0.5', '"ratio": NaN'), "invalid"),
        ("Infinity attribute", raw(22, '"ratio": 0.5', '"ratio": 1e999'), "invalid"),
        ("50-digit number", raw(23, '"ratio": 0.5', '"ratio": ' + "9" * 50), "store_refused"),
    ]


def odd_but_good(first_number: int) -> list[PlannedTrigger]:
    """Valid triggers that look odd: each must become an execution like any other."""

    def event(number: int, jit_event_id: str, **overrides: Any) -> Any:
        overrides.setdefault("additional_attributes", {"owner": "acme-1", "original_repository": "repo-1"})
        return trigger_event(TENANT, jit_event_id, f"asset-{TENANT}", job_runner="jit_runner", **overrides)

    unknown = event(first_number, "odd-unknown-fields")
    with_unknown = unknown.model_dump(mode="json")
    with_unknown["surprise"] = {"nested": [1, 2]}
    with_unknown["steps"][0]["retries"] = 3
    odd = [
        PlannedTrigger.of(first_number, unknown, as_bytes(with_unknown)),
        PlannedTrigger.of(first_number + 1, event(first_number + 1, "odd-\U0001f680-emoji")),
        PlannedTrigger.of(first_number + 2, event(first_number + 2, "odd-\u202ertl-\u200f-marks")),
        PlannedTrigger.of(first_number + 3, event(first_number + 3, "odd-\u00e9\u0301-\u4e2d\u6587")),
        PlannedTrigger.of(
            first_number + 4,
            event(first_number + 4, "odd-200kb", additional_attributes={"blob": "b" * 200 * KB}),
        ),
        PlannedTrigger.of(
            first_number + 5,
            event(first_number + 5, "odd-created-at", created_at=datetime.now(UTC) - timedelta(days=400)),
        ),
    ]
    return odd


async def test_poison_records_go_to_the_dlq_with_their_reason_and_stop_nothing(
    fault_pipeline: Pipeline,
) -> None:
    good = plan_triggers(TRIGGERS)
    odd = odd_but_good(TRIGGERS)
    planned = good + odd
    # Odd records in order among the good ones; the poisons spread over the chunks, one or two each.
    run = FaultRun("poison records", fault_pipeline, good + odd, chunk=10, pause=0.2)
    bad = poisons()
    chunks = -(-len(planned) // run.chunk)
    run.workload.extra = [(1 + n % (chunks - 1), (TENANT, value)) for n, (_, value, _) in enumerate(bad)]
    try:
        await run.start()
        run.start_traffic()
        await run.traffic_done()
        ledger = await run.settle(expected_dlq=len(bad))
    finally:
        await run.stop()
    print(ledger.line())
    print(ledger.details)
    assert_no_loss_or_duplication(ledger)
    assert ledger.sent == len(planned)
    dlq = await read_topic(fault_pipeline.settings, fault_pipeline.settings.topic_execution_dlq, len(bad))
    expected = Counter((value or b"", reason) for _, value, reason in bad)
    got = Counter((record.value or b"", headers_of(record)["dlq.reason"]) for record in dlq)
    described = {(value or b"", reason): what for what, value, reason in bad}
    assert {described.get(k, "?"): v for k, v in (got - expected).items()} == {}, "unexpected dead letters"
    assert {described[k]: v for k, v in (expected - got).items()} == {}, "poisons not dead-lettered"
    for record in dlq:
        headers = headers_of(record)
        assert headers["dlq.topic"] == fault_pipeline.settings.topic_trigger_execution
        assert headers["dlq.message"]
        assert record.key == TENANT.encode()
    assert all(w.process is not None and w.process.poll() is None for w in fault_pipeline.workers)


async def test_a_record_over_a_megabyte_never_reaches_the_service(fault_pipeline: Pipeline) -> None:
    """The producer refuses it (max_request_size, 1 MiB by default); raised, the broker refuses it
    (message.max.bytes, 1 MiB + 12 bytes by default). A trigger service sees the error."""
    settings = fault_pipeline.settings
    value = as_bytes(document(99, additional_attributes={"x": "v" * 1100 * KB}))
    refusals = []
    for max_request_size in (1024 * KB, 4096 * KB):
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, max_request_size=max_request_size
        )
        await producer.start()
        try:
            refusals.append((max_request_size // KB, *await refused_by(producer, settings, value)))
        finally:
            await producer.stop()
    print(f"a {len(value) // KB} KB record, (max_request_size KB, refused by, error): {refusals}")
    assert refusals == [
        (1024, "producer", MessageSizeTooLargeError.__name__),
        (4096, "broker", MessageSizeTooLargeError.__name__),
    ]
    assert await read_topic(settings, settings.topic_trigger_execution, 0, seconds=5) == []


async def refused_by(producer: AIOKafkaProducer, settings: Settings, value: bytes) -> tuple[str, str]:
    """Who refused the record (the producer itself, or the broker), and with which error."""
    try:
        delivery = await producer.send(settings.topic_trigger_execution, key=b"k", value=value)
    except KafkaError as error:
        return "producer", type(error).__name__
    try:
        await delivery
    except KafkaError as error:
        return "broker", type(error).__name__
    return "nobody", ""
