"""execution-status: runners report; the lifecycle decides; terminal states give the slot back."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from execution_stream.domain.executions import already_changed, previous_status
from execution_stream.domain.lifecycle import TERMINAL_STATUSES, is_transition_allowed
from execution_stream.domain.models import (
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    ExecutionStatusUpdate,
)
from execution_stream.domain.retries import NO_RETRIES, RetryPolicy, retried, with_final_attempt
from execution_stream.domain.store import (
    ExecutionKey,
    StatusChange,
    StatusUpdateResult,
    UpdateOutcome,
)
from execution_stream.domain.timestamps import format_timestamp
from execution_stream.domain.trace import TraceContext
from execution_stream.observability.logs import execution_fields, job_fields
from execution_stream.pipeline.messages import (
    AllocationRedispatch,
    AllocationRelease,
    DeadLetterReason,
    Destination,
    Effects,
    ExecutionRef,
    SourceRecord,
    dead_letter,
    encode,
)
from execution_stream.pipeline.ports import ExecutionStore
from execution_stream.pipeline.retrying import until_answered

logger = logging.getLogger(__name__)
# The service's own statuses: a runner reports what its job does, never these.
NOT_REPORTABLE = frozenset({ExecutionStatus.PENDING, ExecutionStatus.DISPATCHED})


def _stored_before_as_applied(result: StatusUpdateResult, change: StatusChange) -> StatusUpdateResult:
    """A refusal because this very change is stored already (its answer was lost, or a crash came
    before its event) is the change itself: its event may never have gone out."""
    stored = result.execution
    if stored is None or result.outcome is not UpdateOutcome.REFUSED:
        return result
    if not change.of_attempt(stored) or not already_changed(stored, change.status, change.at):
        return result
    return StatusUpdateResult(UpdateOutcome.APPLIED, previous_status(stored), stored)


def _overtook_its_dispatch(result: StatusUpdateResult, change: StatusChange) -> bool:
    """A report refused only because the job's `dispatched` mark is not stored yet: its runner may
    have the job (it is handed over first, and the mark may be retried for seconds)."""
    stored = result.execution
    if result.outcome is not UpdateOutcome.REFUSED or stored is None:
        return False
    ours = _handed_over_maybe(stored) and change.of_attempt(stored)
    return ours and is_transition_allowed(ExecutionStatus.DISPATCHED, change.status)


def _handed_over_maybe(execution: Execution) -> bool:
    return execution.status is ExecutionStatus.PENDING and execution.waiting_for_asset is None


def release_of(execution: Execution | ExecutionRef) -> AllocationRelease:
    return AllocationRelease(
        tenant_id=execution.tenant_id, execution_id=execution.execution_id, job_runner=execution.job_runner
    )


def _ignore(outcome: UpdateOutcome) -> None:
    return None


def utc_now() -> datetime:
    return datetime.now(UTC)


def _retried_already(execution: Execution, change: StatusChange) -> bool:
    """The failure that started a later attempt, reported again (a replay)."""
    ended_at = format_timestamp(change.at)
    return any(a.ended_at == ended_at and a.status is change.status for a in execution.attempts or ())


@dataclass(frozen=True)
class Report:
    """A runner's update, with its record's own trace context (used only while no execution is found:
    what a found execution causes carries the execution's own)."""

    update: ExecutionStatusUpdate
    trace: TraceContext


@dataclass
class StatusUpdateStep:
    repository: ExecutionStore
    count: Callable[[UpdateOutcome], None] = _ignore
    retry_policy: RetryPolicy = NO_RETRIES
    now: Callable[[], datetime] = utc_now

    async def handle(self, records: Sequence[SourceRecord]) -> Effects:
        effects = Effects()
        by_execution: dict[tuple[str, str, str], list[Report]] = defaultdict(list)
        for record in records:
            report = self._decode(record, effects)
            if report is not None:
                update = report.update
                by_execution[(update.tenant_id, update.jit_event_id, update.execution_id)].append(report)
        # One execution's updates in their order; different executions side by side.
        results = await asyncio.gather(*(self._apply_in_order(r) for r in by_execution.values()))
        for result_list in results:
            for report, result in result_list:
                self._effects_of(report, result, effects)
        return effects

    def _decode(self, record: SourceRecord, effects: Effects) -> Report | None:
        trace = record.received_trace()
        try:
            update = ExecutionStatusUpdate.model_validate(json.loads(record.value or b""))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            letter = dead_letter(record, DeadLetterReason.NOT_JSON, f"not JSON: {error}", trace)
            effects.outgoing.append(letter)
            return None
        except ValidationError as error:
            effects.outgoing.append(dead_letter(record, DeadLetterReason.INVALID, str(error), trace))
            return None
        if update.status in NOT_REPORTABLE:
            message = f"status {update.status.value!r} is the service's own: runners report running, "
            message += "completed, failed or canceled"
            letter = dead_letter(record, DeadLetterReason.STATUS_NOT_REPORTABLE, message, trace)
            effects.outgoing.append(letter)
            return None
        return Report(update, trace)

    async def _apply_in_order(self, reports: list[Report]) -> list[tuple[Report, StatusUpdateResult]]:
        applied = []
        for report in reports:
            update = report.update
            key = ExecutionKey(update.tenant_id, update.jit_event_id, update.execution_id)
            change = StatusChange.reported(update)
            result = await self._retried_or_applied(key, change)
            await self._record_final_attempt(result)
            applied.append((report, result))
        return applied

    async def _retried_or_applied(
        self, key: ExecutionKey, change: StatusChange, *, again: bool = True
    ) -> StatusUpdateResult:
        """A retryable failure with attempts left starts the next one; the last one's says it was
        the last. A report of another attempt than the current one is refused (by the update's
        condition: only a retryable failure costs a read first)."""
        if not change.retryable:
            return await self._apply(key, change)
        stored = await self._until_answered(lambda: self._read(key), key)
        if stored.execution is None:
            return stored
        execution = stored.execution
        if not change.of_attempt(execution) or _retried_already(execution, change):
            return StatusUpdateResult(UpdateOutcome.REFUSED, execution.status, execution)
        if change.retryable and (
            _handed_over_maybe(execution) or self.retry_policy.retries(execution, change)
        ):
            decided = await self._retried_or_held(key, execution, change)
            if decided is not None:
                return decided
            if again:  # it changed under us: decide once more on what it is now
                return await self._retried_or_applied(key, change, again=False)
        return await self._apply(key, self.retry_policy.final_change(execution, change))

    async def _retried_or_held(
        self, key: ExecutionKey, execution: Execution, change: StatusChange
    ) -> StatusUpdateResult | None:
        """Its next attempt started, or the report held until the job's dispatch mark (the runner
        failed before it); None when the execution changed meanwhile."""
        if _handed_over_maybe(execution):
            return await self._hold(key, change)
        after = retried(execution, change)
        result = await self._until_answered(lambda: self.repository.replace_attempt(execution, after), key)
        return StatusUpdateResult(UpdateOutcome.RETRIED, execution.status, after) if result.applied else None

    async def _read(self, key: ExecutionKey) -> StatusUpdateResult:
        stored = (await self.repository.get_many([key])).get(key)
        if stored is None:
            return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
        return StatusUpdateResult(UpdateOutcome.REFUSED, stored.status, stored)

    async def _record_final_attempt(self, result: StatusUpdateResult) -> None:
        execution = result.execution
        if not result.applied or execution is None or execution.status not in TERMINAL_STATUSES:
            return
        attempts = with_final_attempt(execution)
        if attempts is not None:
            what = f"attempts of {execution.execution_id}"
            await until_answered(lambda: self.repository.record_attempts(execution, attempts), what)

    async def _apply(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        """A report that overtook its job's `dispatched` mark is held on the item, and the mark sends
        it here again (pipeline/dispatches.py). Should the mark come between the refusal and the
        hold, the report is applied now: a status never goes back to pending."""
        result = await self._update(key, change)
        if not _overtook_its_dispatch(result, change):
            return result
        held = await self._hold(key, change)
        return held if held is not None else await self._update(key, change)

    async def _hold(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult | None:
        """Held until the dispatch mark; None when the mark came meanwhile."""
        held = await self._until_answered(lambda: self.repository.hold_report(key, change), key)
        moved_on = held.execution is not None and held.execution.status is not ExecutionStatus.PENDING
        return None if moved_on else held

    async def _update(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        result = await self._until_answered(lambda: self.repository.update_status(key, change), key)
        return _stored_before_as_applied(result, change)

    async def _until_answered(
        self, call: Callable[[], Awaitable[StatusUpdateResult]], key: ExecutionKey
    ) -> StatusUpdateResult:
        return await until_answered(call, f"status update of {key.execution_id}")

    def _effects_of(self, report: Report, result: StatusUpdateResult, effects: Effects) -> None:
        update = report.update
        self.count(result.outcome)
        if result.outcome is UpdateOutcome.NOT_FOUND:
            self._not_found(report, effects)
            return
        execution = result.execution
        if execution is None:
            return
        # The execution's own trace context, not the report's: its records all follow its trigger.
        ids, trace = execution_fields(execution), execution.trace
        if result.outcome is UpdateOutcome.HELD:
            logger.info(
                "status report held until the job's dispatched mark", extra={**ids, "to": update.status.value}
            )
            return
        if result.outcome is UpdateOutcome.RETRIED:
            self._redispatch(execution, result.previous_status, update, effects)
            return
        if result.outcome is UpdateOutcome.APPLIED:
            event = ExecutionEvent.from_change(execution, result.previous_status)
            effects.publish(event, trace)
        else:
            logger.warning(
                "status transition refused",
                extra={**ids, "from": result.previous_status, "to": update.status.value},
            )
        # Any report about a finished execution gives its slot back: a replayed terminal update (a
        # crash between store and send), or the watchdog's timeout of one whose release was lost.
        if execution.status in TERMINAL_STATUSES:
            effects.send(Destination.ALLOCATE, execution.tenant_id, encode(release_of(execution)), trace)

    def _redispatch(
        self,
        execution: Execution,
        previous: ExecutionStatus | None,
        update: ExecutionStatusUpdate,
        effects: Effects,
    ) -> None:
        """Its next attempt: said on execution-events, and dispatched again after the backoff."""
        delay = self.retry_policy.delay_seconds(execution.attempt - 1)
        retry_at = self.now() + timedelta(seconds=delay)
        logger.warning(
            "retryable failure: dispatching again",
            extra={
                **execution_fields(execution),
                "attempt": execution.attempt,
                "retry_at": retry_at.isoformat(),
            },
        )
        event = ExecutionEvent.from_change(execution, previous)
        event = event.model_copy(update={"at": format_timestamp(update.at)})
        effects.publish(event, execution.trace)
        redispatch = AllocationRedispatch(
            tenant_id=execution.tenant_id,
            execution_id=execution.execution_id,
            job_runner=execution.job_runner,
            retry_at=retry_at,
        )
        effects.send(Destination.ALLOCATE, execution.tenant_id, encode(redispatch), execution.trace)

    def _not_found(self, report: Report, effects: Effects) -> None:
        update = report.update
        ids = job_fields(update.tenant_id, update.jit_event_id, update.execution_id, report.trace.trace_id)
        logger.warning("status update for an unknown execution", extra=ids)
        # A slot it may hold (the watchdog's update of a vanished item) is given back.
        release = AllocationRelease(tenant_id=update.tenant_id, execution_id=update.execution_id)
        effects.send(Destination.ALLOCATE, update.tenant_id, encode(release), report.trace)
