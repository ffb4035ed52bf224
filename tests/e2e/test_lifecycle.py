"""The lifecycle a job runner's users expect, through the worker and the API as processes: cancel,
supersede, retry, priority, and the link to the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from execution_stream.domain.waiting import waiting_of
from tests.support.api import bearer
from tests.support.api_process import running_api_process
from tests.support.ledger import (
    admission_order,
    asset_record,
    complete_jobs_in_arrival_order,
    executions_of,
    numbered,
    report,
    stored,
    trigger_record,
)
from tests.support.pipeline import Pipeline, TopicReader, as_json, produce

A, B = "tenant-a", "tenant-b"
NOT_FOUND, CONFLICT, ACCEPTED = 404, 409, 202


async def post_cancel(url: str, execution_id: str, tenant: str = A) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        path = f"{url}/executions/{execution_id}/cancel"
        async with session.post(path, headers=bearer(tenant)) as response:
            return response.status, await response.json()


async def test_cancel_through_the_api_of_a_pending_a_dispatched_and_a_final_execution(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.start_worker(default_concurrency_limit=1)
    runs = ("github_actions", "github_actions")
    await produce(
        settings, settings.topic_trigger_execution, [trigger_record(A, n, runs[n]) for n in range(2)]
    )
    found = await stored(pipeline, A, 2, lambda e: e[0].status.value == "dispatched")
    dispatched, pending = found[0], found[1]
    [dispatch] = [
        d for d in pipeline.github.dispatches if d.inputs["execution_id"] == dispatched.execution_id
    ]
    assert dispatched.workflow_run_id == dispatch.workflow_run_id is not None
    assert (
        dispatched.html_url
        == f"https://github.com/jitsecurity/execution-service/actions/runs/{dispatch.workflow_run_id}"
    )

    async with running_api_process(settings, tmp_path / "api.log") as url:
        assert await post_cancel(url, pending.execution_id) == (
            ACCEPTED,
            {"execution_id": pending.execution_id, "status": "pending", "cancel": "requested"},
        )
        assert (await post_cancel(url, dispatched.execution_id))[0] == ACCEPTED
        assert (await post_cancel(url, dispatched.execution_id, tenant=B))[0] == NOT_FOUND
        assert (await post_cancel(url, "0" * 32))[0] == NOT_FOUND

        ended = await stored(pipeline, A, 2, lambda e: all(x.status.value == "canceled" for x in e.values()))
        assert [c.workflow_run_id for c in pipeline.github.cancels] == [dispatch.workflow_run_id]
        assert ended[0].cancel_reason == ended[1].cancel_reason == "requested"
        assert ended[0].cancel_requested_at is not None
        status, body = await post_cancel(url, dispatched.execution_id)
        assert (status, body["error"]["code"]) == (CONFLICT, "already_final")

    # Each slot was given back once: the next trigger runs at once on the tenant's only slot.
    await produce(settings, settings.topic_trigger_execution, [trigger_record(A, 2, "github_actions")])
    await stored(pipeline, A, 3, lambda e: e[2].status.value == "dispatched")


async def test_a_dispatched_topic_fed_job_is_canceled_by_its_runner_or_after_the_grace(
    pipeline: Pipeline,
) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.start_worker(cancel_grace_seconds=3.0, watchdog_interval_seconds=0.5)
    await produce(settings, settings.topic_trigger_execution, [trigger_record(A, n) for n in range(2)])
    found = await stored(pipeline, A, 2, lambda e: all(x.status.value == "dispatched" for x in e.values()))
    jobs = TopicReader(settings, settings.topic_runner_jobs)
    await jobs.start()
    try:
        commands = [
            (A, as_json({"type": "cancel", "tenant_id": A, "execution_id": e.execution_id}))
            for e in found.values()
        ]
        await produce(settings, settings.topic_execution_commands, commands)
        await jobs.wait_for(
            lambda r: len([v for v in r.values() if v.get("type") == "cancel"]) == 2, 60, "2 cancels"
        )
        cancels = {v["execution_id"]: v for v in jobs.values() if v.get("type") == "cancel"}
        assert set(cancels) == {e.execution_id for e in found.values()}
        # The runner confirms one; the other never answers.
        await produce(settings, settings.topic_execution_status, [report(found[0], "canceled")])
        ended = await stored(pipeline, A, 2, lambda e: all(x.status.value == "canceled" for x in e.values()))
    finally:
        await jobs.stop()
    assert ended[0].error is None
    assert ended[1].error == "canceled: the runner did not confirm the cancel in time"


async def test_five_updates_of_one_pull_request_at_capacity_run_once(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.start_worker(default_concurrency_limit=1)
    await produce(settings, settings.topic_trigger_execution, [trigger_record(A, 0)])
    await stored(pipeline, A, 1, lambda e: e[0].status.value == "dispatched")
    updates = [trigger_record(A, n, jit_event_name="pull_request_updated") for n in range(1, 6)]
    await produce(settings, settings.topic_trigger_execution, updates)

    found = await stored(pipeline, A, 6, lambda e: sum(x.status.value == "canceled" for x in e.values()) == 4)
    for n in range(1, 5):
        assert (found[n].cancel_reason, found[n].superseded_by) == ("superseded", found[n + 1].execution_id)
    assert found[5].status.value == "pending"

    await produce(settings, settings.topic_execution_status, [report(found[0], "completed")])
    found = await stored(pipeline, A, 6, lambda e: e[5].status.value == "dispatched")
    assert sorted(n for n, e in found.items() if e.status.value == "canceled") == [1, 2, 3, 4]


async def test_a_retryable_failure_is_retried_to_success_with_both_attempts_kept(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.start_worker(retry_first_seconds=1.0, max_attempts=3)
    jobs = TopicReader(settings, settings.topic_runner_jobs)
    events = TopicReader(settings, settings.topic_execution_events)
    await jobs.start()
    await events.start()
    try:
        await produce(settings, settings.topic_trigger_execution, [trigger_record(A, 0)])
        await jobs.wait_for(lambda r: len(r.values()) == 1, 60, "the first job")
        [first] = numbered(await executions_of(pipeline.repository, [A])).values()
        failure = report(first, "failed", retryable=True, error="runner pod evicted", run_ref="pod-1")
        await produce(settings, settings.topic_execution_status, [failure])
        await jobs.wait_for(lambda r: len(r.values()) == 2, 60, "the job dispatched again")
        assert [job["attempt"] for job in jobs.values()] == [1, 2]
        again = numbered(await executions_of(pipeline.repository, [A]))[0]
        await produce(
            settings,
            settings.topic_execution_status,
            [report(again, "completed", attempt=2, run_ref="pod-2")],
        )
        done = await stored(pipeline, A, 1, lambda e: e[0].status.value == "completed")
        await events.wait_for(
            lambda r: any(v["status"] == "completed" for v in r.values()), 30, "completed event"
        )
    finally:
        await jobs.stop()
        await events.stop()
    execution = done[0]
    assert execution.execution_id == first.execution_id
    assert execution.attempt == 2
    attempts = [(a.number, a.status.value, a.error, a.run_ref) for a in execution.attempts or []]
    assert attempts == [(1, "failed", "runner pod evicted", "pod-1"), (2, "completed", None, "pod-2")]
    said = [(v["status"], v["attempt"]) for v in events.values()]
    assert said == [("pending", 1), ("dispatched", 1), ("pending", 2), ("dispatched", 2), ("completed", 2)]


async def test_pull_request_scans_go_before_a_nightly_backlog_and_the_nightly_ones_all_run(
    pipeline: Pipeline,
) -> None:
    settings = pipeline.settings
    await produce(settings, settings.topic_assets, [asset_record(A, f"asset-{A}")])
    pipeline.start_worker(default_concurrency_limit=2)
    nightly = [trigger_record(A, n, jit_event_name="nightly_scan") for n in range(100)]
    await produce(settings, settings.topic_trigger_execution, nightly)
    await stored(pipeline, A, 100, lambda e: sum(x.status.value == "dispatched" for x in e.values()) == 2)
    pull_requests = [trigger_record(A, n, jit_event_name="pull_request_created") for n in range(100, 103)]
    await produce(settings, settings.topic_trigger_execution, pull_requests)
    # Queued by the allocator (the queue view wrote where), before any slot frees.
    queued = await stored(
        pipeline, A, 103, lambda e: all(e[n].queue_index is not None for n in range(100, 103))
    )
    assert {queued[n].queue_priority for n in range(100, 103)} == {5}

    async def positions() -> dict[int, int | None] | None:
        found = numbered(await executions_of(pipeline.repository, [A]))
        [snapshot] = (await pipeline.repository.queue_snapshots(A, frozenset({"jit_runner"}))).values()
        shown = {n: waiting_of(found[n], snapshot) for n in (2, 3, 100, 101, 102)}
        return {n: w.queue_position if w else None for n, w in shown.items()}

    async def seen() -> dict[int, int | None] | None:
        shown = await positions()
        return shown if shown is not None and shown[3] == 5 else None

    assert await pipeline.eventually(seen, "the queue as users see it") == {
        100: 1,
        101: 2,
        102: 3,
        2: 4,
        3: 5,
    }

    ran = await complete_jobs_in_arrival_order(settings, A, 103, seconds=240)
    assert len(ran) == 103, f"{len(ran)} of 103 jobs ran"

    # The allocator's order (on enrich-and-dispatch); jobs admitted in one round are dispatched side
    # by side, so the runner may see them swapped.
    assert await admission_order(settings, A) == [0, 1, 100, 101, 102, *range(2, 100)]
    assert sorted(ran) == [*range(100), 100, 101, 102]
