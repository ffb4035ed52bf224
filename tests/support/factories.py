"""Valid records for tests, varied by a few arguments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from execution_stream.domain.executions import build_execution
from execution_stream.domain.models import Asset, Execution, Step, TriggerEvent
from execution_stream.domain.store import QueueSnapshot

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def trigger_event(
    tenant_id: str = "tenant-a",
    jit_event_id: str = "event-1",
    asset_id: str = "asset-1",
    plan_item_slug: str = "item-code-vulnerability",
    job_runner: str = "github_actions",
    **overrides: Any,
) -> TriggerEvent:
    fields: dict[str, Any] = {
        "tenant_id": tenant_id,
        "jit_event_id": jit_event_id,
        "jit_event_name": "pull_request_created",
        "asset_id": asset_id,
        "plan_slug": "jit-plan",
        "plan_item_slug": plan_item_slug,
        "workflow_slug": "workflow-sast",
        "job_name": "static-code-analysis-python",
        "steps": [
            Step(
                name="Run Bandit",
                uses="ghcr.io/jitsecurity-controls/control-bandit-slim:latest",
                params={"args": "-r /code -f json -q -ll -iii"},
            )
        ],
        "job_runner": job_runner,
        "additional_attributes": {
            "owner": "jitsecurity",
            "pull_request_number": "22",
            "ratio": 0.5,
        },
    }
    fields.update(overrides)
    return TriggerEvent(**fields)


def asset(tenant_id: str = "tenant-a", asset_id: str = "asset-1") -> Asset:
    return Asset(
        asset_id=asset_id,
        tenant_id=tenant_id,
        asset_name="execution-service",
        asset_type="repo",
        vendor="github",
        owner="jitsecurity",
        installation_id="24915845",
        app_id="161076",
    )


def execution(
    tenant_id: str = "tenant-a",
    number: int = 0,
    plan_item_slug: str = "item-code-vulnerability",
    created_at: datetime | None = None,
) -> Execution:
    """The `number`th execution of a tenant; later numbers are created later."""
    event = trigger_event(tenant_id, f"event-{number}", f"asset-{number}", plan_item_slug)
    moment = created_at or BASE_TIME + timedelta(seconds=number, microseconds=number)
    return build_execution(event, asset(tenant_id, f"asset-{number}"), moment)


def queue_snapshot(
    tenant_id: str = "tenant-a",
    job_runner: str = "github_actions",
    *,
    head_index: int = 0,
    limit: int = 2,
    in_use: int = 2,
    queued: int = 3,
) -> QueueSnapshot:
    return QueueSnapshot(
        tenant_id=tenant_id,
        job_runner=job_runner,
        limit=limit,
        in_use=in_use,
        head_index=head_index,
        queued=queued,
        version=1,
        updated_at="2026-01-01T00:00:00.000000",
    )
