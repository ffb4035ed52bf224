"""An in-memory store behind both of our store ports: the pipeline's ExecutionStore and the API's
ExecutionReader.

A fake of our own ports, not of DynamoDB, with the contracts of the DynamoDB repository: a create
that keeps the stored execution, status changes only along the lifecycle, reports held on a pending
execution, newest-first pages whose `next_key` is None exactly on the last page. `available=False`
makes every call unavailable; `queries`, `finds` and `snapshot_requests` record what the API asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.domain.executions import TransitionNotAllowedError, apply_status, asset_target
from execution_stream.domain.models import Asset, Attempt, Execution, ExecutionStatus
from execution_stream.domain.store import (
    CreateResult,
    ExecutionKey,
    ExecutionPage,
    ExecutionQuery,
    QueueSnapshot,
    RepositoryUnavailableError,
    StatusChange,
    StatusUpdateResult,
    UpdateOutcome,
)
from execution_stream.domain.timestamps import format_timestamp


class FakeStore:
    def __init__(self, executions: Iterable[Execution] = (), snapshots: Iterable[QueueSnapshot] = ()) -> None:
        self.items: dict[ExecutionKey, Execution] = {ExecutionKey.of(e): e for e in executions}
        self.held: dict[ExecutionKey, list[StatusChange]] = {}
        self.snapshots = {(s.tenant_id, s.job_runner): s for s in snapshots}
        self.available = True
        self.queries: list[ExecutionQuery] = []
        self.finds: list[tuple[str, str]] = []
        self.snapshot_requests: list[tuple[str, frozenset[str]]] = []

    async def create(self, execution: Execution) -> CreateResult:
        self._check_available()
        key = ExecutionKey.of(execution)
        if key in self.items:
            return CreateResult(self.items[key], created=False)
        self.items[key] = execution
        return CreateResult(execution, created=True)

    async def create_many(self, executions: Sequence[Execution]) -> list[CreateResult]:
        return [await self.create(execution) for execution in executions]

    async def get(self, key: ExecutionKey) -> Execution | None:
        self._check_available()
        return self.items.get(key)

    async def get_many(self, keys: Sequence[ExecutionKey]) -> dict[ExecutionKey, Execution]:
        self._check_available()
        return {key: self.items[key] for key in keys if key in self.items}

    async def update_status(
        self, key: ExecutionKey, change: StatusChange, plan_item_slug: str | None = None
    ) -> StatusUpdateResult:
        self._check_available()
        stored = self.items.get(key)
        if stored is None:
            return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
        held = tuple(self.held.get(key, ()))
        try:
            updated = apply_status(stored, change.status, change.at, change.has_findings, change.error)
        except TransitionNotAllowedError:
            return StatusUpdateResult(UpdateOutcome.REFUSED, stored.status, stored, held)
        wrong_start = change.only_from is not None and stored.status is not change.only_from
        if wrong_start or not change.of_attempt(stored):
            return StatusUpdateResult(UpdateOutcome.REFUSED, stored.status, stored, held)
        fields: dict[str, Any] = {**change.run_fields(), **change.cancel_fields()}
        if change.deadline_at is not None:
            fields["deadline_at"] = format_timestamp(change.deadline_at)
        updated = Execution.model_validate({**updated.model_dump(), **fields}) if fields else updated
        self.items[key] = updated
        return StatusUpdateResult(UpdateOutcome.APPLIED, stored.status, updated, held)

    async def request_cancel(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        self._check_available()
        stored = self.items.get(key)
        if stored is None:
            return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
        under_way = stored.status in (ExecutionStatus.DISPATCHED, ExecutionStatus.RUNNING)
        if not under_way or stored.cancel_requested_at is not None:
            return StatusUpdateResult(UpdateOutcome.REFUSED, stored.status, stored)
        fields = {"cancel_requested_at": format_timestamp(change.at), **change.cancel_fields()}
        self.items[key] = updated = Execution.model_validate({**stored.model_dump(), **fields})
        return StatusUpdateResult(UpdateOutcome.APPLIED, stored.status, updated)

    async def replace_attempt(self, before: Execution, after: Execution) -> StatusUpdateResult:
        self._check_available()
        key = ExecutionKey.of(before)
        stored = self.items.get(key)
        same = stored is not None and (stored.status, stored.dispatched_at, stored.attempt) == (
            before.status,
            before.dispatched_at,
            before.attempt,
        )
        if not same:
            return StatusUpdateResult(UpdateOutcome.REFUSED, stored.status if stored else None, stored)
        self.items[key] = after
        return StatusUpdateResult(UpdateOutcome.APPLIED, before.status, after)

    async def record_attempts(self, execution: Execution, attempts: Sequence[Attempt]) -> None:
        self._check_available()
        key = ExecutionKey.of(execution)
        stored = self.items.get(key)
        if stored is not None and len(stored.attempts or ()) == len(execution.attempts or ()):
            self.items[key] = stored.model_copy(update={"attempts": list(attempts)})

    async def hold_report(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        self._check_available()
        stored = self.items.get(key)
        if stored is None:
            return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
        held = self.held.setdefault(key, [])
        pending = stored.status is ExecutionStatus.PENDING and stored.waiting_for_asset is None
        if pending and change not in held:
            held.append(change)
        outcome = UpdateOutcome.HELD if pending and change in held else UpdateOutcome.REFUSED
        return StatusUpdateResult(outcome, stored.status, stored, tuple(held))

    async def held_reports(self, key: ExecutionKey) -> tuple[StatusChange, ...]:
        self._check_available()
        return tuple(self.held.get(key, ()))

    async def complete_waiting(self, key: ExecutionKey, asset: Asset) -> Execution | None:
        self._check_available()
        stored = self.items.get(key)
        if stored is not None and stored.waiting_for_asset and stored.status is ExecutionStatus.PENDING:
            fields: dict[str, Any] = {
                "asset_name": asset.asset_name,
                "asset_type": asset.asset_type,
                "vendor": asset.vendor,
                "additional_attributes": {**stored.additional_attributes, **asset_target(asset)},
            }
            self.items[key] = stored = stored.model_copy(update={**fields, "waiting_for_asset": None})
        return stored

    async def list(self, query: ExecutionQuery) -> ExecutionPage:
        self._check_available()
        self.queries.append(query)
        index = keys.index_for_filter(query.tenant_id, query.status, query.plan_item_slug)
        matching = sorted(
            (e for e in self.items.values() if _matches(e, query)),
            key=lambda e: (e.created_at, keys.sort_key(e.jit_event_id, e.execution_id)),
            reverse=True,
        )
        start = 0
        if query.start_after is not None:
            keys.check_page_key(query.start_after, query.tenant_id, index)
            sort_keys = [keys.sort_key(e.jit_event_id, e.execution_id) for e in matching]
            start = sort_keys.index(query.start_after[keys.SK]) + 1
        page = matching[start : start + query.limit]
        if start + query.limit >= len(matching):
            return ExecutionPage(page, None)
        item_keys = keys.execution_keys(page[-1])
        return ExecutionPage(page, {name: item_keys[name] for name in index.page_key_names})

    async def find(self, tenant_id: str, execution_id: str) -> Execution | None:
        self._check_available()
        self.finds.append((tenant_id, execution_id))
        wanted = (tenant_id, execution_id)
        return next((e for e in self.items.values() if (e.tenant_id, e.execution_id) == wanted), None)

    async def queue_snapshots(self, tenant_id: str, runners: frozenset[str]) -> dict[str, QueueSnapshot]:
        self._check_available()
        self.snapshot_requests.append((tenant_id, runners))
        found = (self.snapshots.get((tenant_id, runner)) for runner in runners)
        return {snapshot.job_runner: snapshot for snapshot in found if snapshot is not None}

    async def ping(self) -> None:
        self._check_available()

    def _check_available(self) -> None:
        if not self.available:
            raise RepositoryUnavailableError("fake DynamoDB is down")


def _matches(execution: Execution, query: ExecutionQuery) -> bool:
    return (
        execution.tenant_id == query.tenant_id
        and query.status in {None, execution.status}
        and query.plan_item_slug in {None, execution.plan_item_slug}
    )
