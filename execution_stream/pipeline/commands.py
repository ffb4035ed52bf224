"""execution-commands: what the API and services ask of an execution; today, to cancel it.

A pending execution is canceled at once and leaves its queue (its slot, if it holds one, is given
back). A dispatched or running one is marked as asked to cancel, once, and stopped at its runner; it
becomes `canceled` when the runner confirms (GitHub accepting the cancel of its run, a topic-fed
runner reporting `canceled`) or when the grace period passes (the allocation watchdog). A final one
stays as it is. Asked twice, it is canceled once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pydantic import TypeAdapter

from execution_stream.domain.commands import CancelCommand
from execution_stream.domain.lifecycle import TERMINAL_STATUSES
from execution_stream.domain.models import Execution, ExecutionEvent, ExecutionStatus
from execution_stream.domain.store import ExecutionKey, StatusChange
from execution_stream.domain.timestamps import parse_timestamp
from execution_stream.observability.logs import execution_fields
from execution_stream.pipeline.messages import (
    AllocationCancelRequested,
    DeadLetterReason,
    Destination,
    Effects,
    Outgoing,
    SourceRecord,
    dead_letter,
    decode_keyed_by_tenant,
    encode,
)
from execution_stream.pipeline.ports import ExecutionStore
from execution_stream.pipeline.retrying import until_answered
from execution_stream.pipeline.runner_cancels import RunnerCancels
from execution_stream.pipeline.status_updates import release_of

logger = logging.getLogger(__name__)
cancel_command = TypeAdapter(CancelCommand)
UNDER_WAY = frozenset({ExecutionStatus.DISPATCHED, ExecutionStatus.RUNNING})


@dataclass
class CommandStep:
    repository: ExecutionStore
    runners: RunnerCancels
    grace_seconds: float
    now: Callable[[], datetime]

    async def handle(self, records: Sequence[SourceRecord]) -> Effects:
        effects = Effects()
        by_execution: dict[tuple[str, str], list[tuple[SourceRecord, CancelCommand]]] = defaultdict(list)
        for record in records:
            command = decode_keyed_by_tenant(cancel_command, record)
            if isinstance(command, Outgoing):
                effects.outgoing.append(command)
            else:
                by_execution[(command.tenant_id, command.execution_id)].append((record, command))
        # One execution's commands in their order; different executions side by side.
        await asyncio.gather(*(self._in_order(commands, effects) for commands in by_execution.values()))
        return effects

    async def _in_order(self, commands: list[tuple[SourceRecord, CancelCommand]], effects: Effects) -> None:
        for record, command in commands:
            await self._cancel(record, command, effects)

    async def _cancel(self, record: SourceRecord, command: CancelCommand, effects: Effects) -> None:
        stored = await until_answered(lambda: self._find(command), _cancel_of(command.execution_id))
        if stored is None:
            message = f"no execution {command.execution_id!r} of tenant {command.tenant_id!r}"
            effects.outgoing.append(dead_letter(record, DeadLetterReason.EXECUTION_NOT_FOUND, message))
            return
        change = StatusChange(
            ExecutionStatus.CANCELED,
            self.now(),
            cancel_reason=command.reason,
            superseded_by=command.superseded_by,
        )
        if stored.status is ExecutionStatus.PENDING:
            stored = await self._cancel_pending(stored, change, effects)
        if stored is not None and stored.status in UNDER_WAY:
            await self._cancel_at_runner(stored, change, effects)
        elif stored is not None and stored.status in TERMINAL_STATUSES:
            logger.info("cancel of a final execution: nothing to do", extra=execution_fields(stored))

    async def _find(self, command: CancelCommand) -> Execution | None:
        if command.jit_event_id is None:
            return await self.repository.find(command.tenant_id, command.execution_id)
        key = ExecutionKey(command.tenant_id, command.jit_event_id, command.execution_id)
        return (await self.repository.get_many([key])).get(key)

    async def _cancel_pending(
        self, stored: Execution, change: StatusChange, effects: Effects
    ) -> Execution | None:
        """Canceled while still pending; else the execution as it is now (its job went out)."""
        key, only_pending = ExecutionKey.of(stored), replace(change, only_from=ExecutionStatus.PENDING)
        result = await until_answered(
            lambda: self.repository.update_status(key, only_pending, stored.plan_item_slug),
            _cancel_of(stored.execution_id),
        )
        canceled = result.execution
        if not result.applied or canceled is None:
            return canceled
        effects.publish(ExecutionEvent.from_change(canceled, ExecutionStatus.PENDING), canceled.trace)
        effects.send(Destination.ALLOCATE, canceled.tenant_id, encode(release_of(canceled)), canceled.trace)
        return None

    async def _cancel_at_runner(self, stored: Execution, change: StatusChange, effects: Effects) -> None:
        key = ExecutionKey.of(stored)
        result = await until_answered(
            lambda: self.repository.request_cancel(key, change), _cancel_of(stored.execution_id)
        )
        execution = result.execution
        if execution is None or execution.status not in UNDER_WAY or execution.cancel_requested_at is None:
            return
        confirm_by = parse_timestamp(execution.cancel_requested_at) + timedelta(seconds=self.grace_seconds)
        # Asked before (a replay, or a second cancel): only the grace period is said again.
        if result.applied and await self.runners.cancel(execution, confirm_by, effects):
            confirmed = StatusChange(ExecutionStatus.CANCELED, self.now()).report(key)
            effects.send(Destination.STATUS, execution.tenant_id, encode(confirmed), execution.trace)
            return
        grace = AllocationCancelRequested(
            tenant_id=execution.tenant_id,
            execution_id=execution.execution_id,
            job_runner=execution.job_runner,
            confirm_by=confirm_by,
        )
        effects.send(Destination.ALLOCATE, execution.tenant_id, encode(grace), execution.trace)


def _cancel_of(execution_id: str) -> str:
    return f"cancel of {execution_id}"
