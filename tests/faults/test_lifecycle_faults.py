"""Cancels and retries under traffic while the worker is killed with SIGKILL and restarted: every
execution ends once, a cancel is one cancellation, a retried one keeps its attempts, no slot leaks."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import pytest

from execution_stream.domain.models import Execution
from execution_stream.settings import Settings
from tests.support.fault_run import FaultWorker
from tests.support.ledger import asset_record, executions_of, number_of, slot_holders, trigger_record
from tests.support.pipeline import Pipeline, TopicReader, as_json, produce

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

A = "tenant-lifecycle"
TRIGGERS = 60
LIMIT = 3
FINAL = {"completed", "failed", "canceled"}


def cancelled_by_the_test(number: int) -> bool:
    return number % 5 == 1


def fails_retryably_once(number: int) -> bool:
    return number % 3 == 0


def now_text() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


class Runner:
    """A topic-fed runner: completes each job at once, except a first attempt it fails retryably;
    confirms each cancel it is sent."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.jobs = TopicReader(settings, settings.topic_runner_jobs)
        self.answered: set[tuple[str, str, int]] = set()
        self.read = 0

    async def answer(self) -> None:
        await self.jobs.poll()
        reports = []
        records = self.jobs.values()
        for record in records[self.read :]:
            report = self._report(record)
            if report is not None:
                reports.append((A, as_json(report)))
        self.read = len(records)
        if reports:
            await produce(self.settings, self.settings.topic_execution_status, reports)

    def _report(self, record: dict[str, Any]) -> dict[str, Any] | None:
        seen = (record["type"], record["execution_id"], record["attempt"])
        if seen in self.answered:
            return None
        self.answered.add(seen)
        ids = {key: record[key] for key in ("tenant_id", "jit_event_id", "execution_id")}
        if record["type"] == "cancel":
            return {**ids, "status": "canceled", "at": now_text()}
        number, attempt = number_of(record["jit_event_id"]), record["attempt"]
        if fails_retryably_once(number) and attempt == 1:
            return {
                **ids,
                "status": "failed",
                "retryable": True,
                "error": "node lost",
                "attempt": 1,
                "at": now_text(),
            }
        return {**ids, "status": "completed", "attempt": attempt, "at": now_text()}


async def test_cancels_and_retries_through_a_sigkill_end_every_execution_once(
    fault_pipeline: Pipeline,
) -> None:
    pipeline = fault_pipeline
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    overrides: dict[str, Any] = {
        "default_concurrency_limit": LIMIT,
        "retry_first_seconds": 0.5,
        "cancel_grace_seconds": 5.0,
        "watchdog_interval_seconds": 0.5,
        "worker_web_port": 0,
    }
    start_worker(pipeline, overrides)
    runner = Runner(settings)
    await runner.jobs.start()
    try:
        await produce(
            settings, settings.topic_trigger_execution, [trigger_record(A, n) for n in range(TRIGGERS)]
        )
        for _ in range(10):
            await runner.answer()
            await asyncio.sleep(0.2)
        stored = numbered(await executions_of(pipeline.repository, [A]))
        cancels = [
            (A, as_json({"type": "cancel", "tenant_id": A, "execution_id": e.execution_id}))
            for n, e in stored.items()
            if cancelled_by_the_test(n)
        ]
        await produce(settings, settings.topic_execution_commands, cancels)
        pipeline.workers[-1].kill()
        await produce(settings, settings.topic_execution_commands, cancels)  # said twice
        start_worker(pipeline, overrides)

        async def all_final() -> dict[int, Execution] | None:
            await runner.answer()
            found = numbered(await executions_of(pipeline.repository, [A]))
            done = len(found) == TRIGGERS and all(e.status.value in FINAL for e in found.values())
            return found if done else None

        ended = await pipeline.eventually(all_final, "every execution final", 240)
    finally:
        await runner.jobs.stop()

    events = await final_events(settings)
    assert {n: statuses for n, statuses in events.items() if len(statuses) != 1} == {}
    assert {n: (e.error, e.attempt, e.attempts) for n, e in ended.items() if e.status.value == "failed"} == {}
    for number, execution in ended.items():
        assert {events[number].pop()} == {execution.status.value}
        if execution.status.value == "canceled":
            assert cancelled_by_the_test(number), number
            assert execution.cancel_reason == "requested"
        elif fails_retryably_once(number):
            attempts = [(a.number, a.status.value) for a in execution.attempts or []]
            assert attempts == [(1, "failed"), (2, "completed")], number
    assert any(e.status.value == "canceled" for e in ended.values())
    assert (await slot_holders(settings)).get(A, {}) == {}


def start_worker(pipeline: Pipeline, overrides: dict[str, Any]) -> None:
    """A worker whose group notices a SIGKILL within seconds (tests.support.fault_run)."""
    settings = pipeline.settings.model_copy(update=overrides)
    worker = FaultWorker(settings, pipeline.log_dir / f"worker-{len(pipeline.workers)}.log")
    pipeline.workers.append(worker)
    worker.start()


def numbered(executions: list[Execution]) -> dict[int, Execution]:
    return {number_of(e.jit_event_id): e for e in executions}


async def final_events(settings: Settings) -> dict[int, set[str]]:
    """Each execution's final statuses on execution-events (at least once: repeats are one)."""
    events = TopicReader(settings, settings.topic_execution_events)
    await events.start()
    try:
        await events.poll()
        await events.poll()
    finally:
        await events.stop()
    finals: dict[int, set[str]] = defaultdict(set)
    for event in events.values():
        if event["status"] in FINAL:
            finals[number_of(event["jit_event_id"])].add(event["status"])
    return dict(finals)
