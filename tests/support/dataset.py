"""The executions the integration tests store: the two API tenants, and how an execution reaches
each status through allowed transitions only."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from execution_stream.adapters.dynamodb_table import create_table
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.settings import Settings

S = ExecutionStatus
API_TENANTS = ("tenant-api-a", "tenant-api-b")
API_TENANT_SIZES = (250, 40)
API_PLAN_ITEMS = ("item-sast", "item-sca", "item-iac")
# How an execution reaches each status it ends in (allowed transitions only).
PATH_TO: dict[ExecutionStatus, list[ExecutionStatus]] = {
    S.PENDING: [],
    S.DISPATCHED: [S.DISPATCHED],
    S.RUNNING: [S.DISPATCHED, S.RUNNING],
    S.COMPLETED: [S.DISPATCHED, S.RUNNING, S.COMPLETED],
    S.FAILED: [S.DISPATCHED, S.FAILED],
    S.CANCELED: [S.CANCELED],
}


async def provision_table(settings: Settings) -> None:
    """create_table is blocking boto3: run it off the event loop."""
    await asyncio.to_thread(create_table, settings)


@dataclass(frozen=True)
class ApiDataset:
    settings: Settings
    executions: list[Execution]  # as stored now, statuses applied

    def expected(
        self,
        tenant_id: str,
        status: ExecutionStatus | None = None,
        plan_item_slug: str | None = None,
    ) -> list[Execution]:
        matching = [
            e
            for e in self.executions
            if e.tenant_id == tenant_id
            and status in (None, e.status)
            and plan_item_slug in (None, e.plan_item_slug)
        ]
        return sorted(matching, key=lambda e: e.created_at, reverse=True)
