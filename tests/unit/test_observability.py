"""Metrics counted from what the pipeline publishes, bounded labels, and JSON log lines."""

from __future__ import annotations

import json
import logging

from prometheus_client import generate_latest

from execution_stream.adapters.kafka_fetching import UndecodableBatch
from execution_stream.domain.executions import apply_status
from execution_stream.domain.models import ExecutionEvent, ExecutionStatus
from execution_stream.observability.logs import JsonFormatter, job_fields
from execution_stream.pipeline.messages import (
    DeadLetterReason,
    Destination,
    Effects,
    SourceRecord,
    dead_letter,
)
from execution_stream.streaming.metrics import WorkerMetrics
from tests.support.factories import BASE_TIME, execution


def test_events_and_dead_letters_become_counters() -> None:
    metrics = WorkerMetrics()
    created = execution()
    dispatched = apply_status(created, ExecutionStatus.DISPATCHED, BASE_TIME.replace(minute=2))
    source = SourceRecord("trigger-execution", 3, 17, b"tenant-a", b"garbage")
    effects = Effects()
    effects.publish(ExecutionEvent.from_change(created, None), created.trace)
    effects.publish(ExecutionEvent.from_change(dispatched, ExecutionStatus.PENDING), dispatched.trace)
    effects.outgoing.append(dead_letter(source, DeadLetterReason.NOT_JSON, "not JSON"))
    effects.send(Destination.ALLOCATE, "tenant-a", b"{}")
    metrics.observe_sent(effects.outgoing)
    text = generate_latest(metrics.registry).decode()

    assert 'execution_stream_executions_total{change="created",runner="github_actions"} 1.0' in text
    assert 'execution_stream_executions_total{change="dispatched",runner="github_actions"} 1.0' in text
    assert 'execution_stream_dead_letters_total{reason="not_json"} 1.0' in text
    assert 'execution_stream_trigger_to_dispatch_seconds_sum{runner="github_actions"} 120.0' in text


def test_a_retry_counts_as_retried_and_its_dispatch_is_not_timed_from_the_trigger() -> None:
    metrics = WorkerMetrics()
    dispatched = apply_status(execution(), ExecutionStatus.DISPATCHED, BASE_TIME.replace(minute=2))
    again = dispatched.model_copy(update={"status": ExecutionStatus.PENDING, "attempt": 2})
    redispatched = apply_status(again, ExecutionStatus.DISPATCHED, BASE_TIME.replace(minute=9))
    effects = Effects()
    effects.publish(ExecutionEvent.from_change(again, ExecutionStatus.DISPATCHED), again.trace)
    effects.publish(ExecutionEvent.from_change(redispatched, ExecutionStatus.PENDING), redispatched.trace)
    metrics.observe_sent(effects.outgoing)
    text = generate_latest(metrics.registry).decode()

    assert 'execution_stream_executions_total{change="retried",runner="github_actions"} 1.0' in text
    assert 'change="created"' not in text
    assert 'execution_stream_executions_total{change="dispatched",runner="github_actions"} 1.0' in text
    assert 'execution_stream_trigger_to_dispatch_seconds_count{runner="github_actions"}' not in text


def test_undecodable_batches_are_counted_per_partition() -> None:
    metrics = WorkerMetrics()
    error = "UnsupportedCodecError('zstd')"
    for offset in (7, 7, 90):
        metrics.count_undecodable(UndecodableBatch("trigger-execution", 2, offset, error))
    text = generate_latest(metrics.registry).decode()
    assert 'execution_stream_undecodable_batches_total{partition="2",topic="trigger-execution"} 3.0' in text


def test_pending_gauges_name_the_busiest_tenants_and_sum_the_rest() -> None:
    metrics = WorkerMetrics(top_tenants=2)
    metrics.set_pending({"a": 5, "b": 1, "c": 9, "d": 2}, {"a": 10.0, "b": 99.0, "c": 1.0, "d": 3.0})
    text = generate_latest(metrics.registry).decode()

    pending = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("execution_stream_pending_executions{")
    }
    assert pending == {
        'execution_stream_pending_executions{tenant="c"}': 9.0,
        'execution_stream_pending_executions{tenant="a"}': 5.0,
        'execution_stream_pending_executions{tenant="other"}': 3.0,
    }
    assert 'execution_stream_oldest_pending_age_seconds{tenant="other"} 99.0' in text


def test_a_log_line_is_json_with_the_job_ids() -> None:
    record = logging.LogRecord(
        "execution_stream.pipeline", logging.WARNING, "x.py", 1, "refused %s", ("now",), None
    )
    for name, value in job_fields("tenant-a", "event-1", "abc").items():
        setattr(record, name, value)

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "refused now"
    assert (line["level"], line["logger"]) == ("warning", "execution_stream.pipeline")
    assert (line["tenant_id"], line["jit_event_id"], line["execution_id"]) == ("tenant-a", "event-1", "abc")
