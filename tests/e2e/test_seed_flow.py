"""The seed's flow, end to end: asset and trigger in, the execution pending, dispatched, completed."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import timedelta
from pathlib import Path

from execution_stream.adapters.dynamodb_item_codec import execution_to_item
from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.domain.identity import derive_execution_id
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import ExecutionKey
from execution_stream.domain.timestamps import parse_timestamp
from tests.support.pipeline import Pipeline, TopicReader, as_json, produce

SEED_ITEM = json.loads((Path(__file__).parents[1] / "unit" / "golden" / "seed_example_item.json").read_text())
TRIGGER_FIELDS = (
    "tenant_id",
    "jit_event_id",
    "jit_event_name",
    "asset_id",
    "plan_slug",
    "plan_item_slug",
    "workflow_slug",
    "job_name",
    "steps",
    "job_runner",
    "additional_attributes",
)
SEED_ASSET = {
    "asset_id": SEED_ITEM["asset_id"],
    "tenant_id": SEED_ITEM["tenant_id"],
    "asset_name": "execution-service",
    "asset_type": "repo",
    "vendor": "github",
    "owner": "jitsecurity",
    "installation_id": "24915845",
    "app_id": "161076",
    "added_by_a_newer_asset_service": True,
}
TIMELY = 60.0


async def test_the_seed_example_flows_from_trigger_to_completed(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    tenant, event_id = SEED_ITEM["tenant_id"], SEED_ITEM["jit_event_id"]
    execution_id = derive_execution_id(
        tenant, event_id, SEED_ITEM["asset_id"], SEED_ITEM["workflow_slug"], SEED_ITEM["job_name"]
    )
    key = ExecutionKey(tenant, event_id, execution_id)
    await produce(settings, settings.topic_assets, [(SEED_ASSET["asset_id"], as_json(SEED_ASSET))])
    web_port = free_loopback_port()
    pipeline.start_worker(worker_web_port=web_port)
    trigger = {name: SEED_ITEM[name] for name in TRIGGER_FIELDS}
    await produce(settings, settings.topic_trigger_execution, [(tenant, as_json(trigger))])

    async def dispatched() -> Execution | None:
        stored = await pipeline.repository.get(key)
        return stored if stored and stored.status is ExecutionStatus.DISPATCHED else None

    execution = await pipeline.eventually(dispatched, "the execution dispatched")
    assert [d.inputs["execution_id"] for d in pipeline.github.dispatches] == [execution_id]
    dispatch = pipeline.github.dispatches[0]
    assert (dispatch.owner, dispatch.repo, dispatch.workflow, dispatch.ref) == (
        "jitsecurity",
        "execution-service",
        "workflow-sast.yml",
        "main",
    )

    update = {"tenant_id": tenant, "jit_event_id": event_id, "execution_id": execution_id}
    completed_at = "2026-01-01T00:00:05.000001"
    await produce(
        settings,
        settings.topic_execution_status,
        [(tenant, as_json({**update, "status": "completed", "has_findings": False, "at": completed_at}))],
    )

    async def completed() -> Execution | None:
        stored = await pipeline.repository.get(key)
        return stored if stored and stored.status is ExecutionStatus.COMPLETED else None

    execution = await pipeline.eventually(completed, "the execution completed")
    item = execution_to_item(execution)
    moments = {"created_at", "created_at_ts", "completed_at", "completed_at_ts", "GSI1SK", "GSI2SK"}
    moments |= {"GSI3SK", "GSI4SK", "registered_at", "registered_at_ts", "SK", "execution_id"}
    # Beyond the seed's item: the deadline set at dispatch, the key of the by-id index, the trace
    # context made for the trigger (it came without one), the GitHub run the dispatch created, and
    # the priority class of a pull-request event.
    ours = {"dispatched_at", "dispatched_at_ts", "deadline_at", "GSI5PK", "traceparent"}
    ours |= {"workflow_run_id", "html_url", "priority"}
    assert {k: v for k, v in item.items() if k not in moments | ours} == {
        k: v for k, v in SEED_ITEM.items() if k not in moments
    }
    timeout = timedelta(seconds=settings.job_timeout_seconds)
    assert parse_timestamp(item["deadline_at"]) == parse_timestamp(item["dispatched_at"]) + timeout
    assert item["GSI5PK"] == f"TENANT#{tenant}#EXECUTION#{execution_id}"
    [dispatch] = pipeline.github.dispatches
    assert item["workflow_run_id"] == dispatch.workflow_run_id
    assert (
        item["html_url"]
        == f"https://github.com/jitsecurity/{dispatch.repo}/actions/runs/{dispatch.workflow_run_id}"
    )
    assert (SEED_ITEM["jit_event_name"], item["priority"]) == ("pull_request_created", 5)
    assert item["SK"] == f"JIT_EVENT#{event_id}#RUN#{execution_id}"
    assert (item["completed_at"], item["has_findings"]) == (completed_at, False)

    events = TopicReader(settings, settings.topic_execution_events)
    await events.start()
    try:
        await events.wait_for(lambda r: len(r.records) >= 3, TIMELY, "three execution events")
    finally:
        await events.stop()
    assert [(e["status"], e["previous_status"]) for e in events.values()] == [
        ("pending", None),
        ("dispatched", "pending"),
        ("completed", "dispatched"),
    ]
    metrics = await asyncio.to_thread(read_url, f"http://127.0.0.1:{web_port}/metrics")
    for change in ("created", "dispatched", "completed"):
        assert (
            f'execution_stream_executions_total{{change="{change}",runner="github_actions"}} 1.0' in metrics
        )
    assert "execution_stream_triggers_consumed_total 1.0" in metrics
    assert 'execution_stream_trigger_to_dispatch_seconds_count{runner="github_actions"} 1.0' in metrics
    assert '"ready": true' in await asyncio.to_thread(read_url, f"http://127.0.0.1:{web_port}/healthz")
    assert pipeline.workers[0].stop() == 0


def read_url(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())
