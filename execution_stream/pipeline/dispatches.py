"""enrich-and-dispatch: an execution holding a slot becomes a job and goes to its runner.

Order of effects: dispatch, then mark `dispatched`. A replay finds it marked and does not dispatch
again; only a crash between the two sends a job twice (GitHub's dispatch API has no idempotency key,
and a topic-fed runner can drop a second job by its execution_id).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ValidationError

from execution_stream.domain.dispatch import (
    DispatchRefusedError,
    DispatchRetryPolicy,
    DispatchUnavailableError,
    RunDetails,
)
from execution_stream.domain.enrichment import (
    GITHUB_ACTIONS,
    DispatchTargetError,
    build_dispatched_job,
    github_workflow_target,
)
from execution_stream.domain.executions import already_changed, previous_status
from execution_stream.domain.lifecycle import TERMINAL_STATUSES
from execution_stream.domain.models import (
    Execution,
    ExecutionEvent,
    ExecutionStatus,
)
from execution_stream.domain.store import (
    ExecutionKey,
    RepositoryUnavailableError,
    StatusChange,
)
from execution_stream.domain.timestamps import parse_timestamp
from execution_stream.domain.trace import TraceContext
from execution_stream.observability.logs import execution_fields, job_fields
from execution_stream.pipeline.messages import (
    AllocationLease,
    AllocationSetAside,
    DeadLetterReason,
    Destination,
    Effects,
    ExecutionRef,
    SourceRecord,
    dead_letter,
    encode,
)
from execution_stream.pipeline.ports import ExecutionStore, GithubDispatcher, RunnerJobPublisher
from execution_stream.pipeline.retrying import pause
from execution_stream.pipeline.runner_cancels import RunnerCancels
from execution_stream.pipeline.status_updates import release_of

logger = logging.getLogger(__name__)
_DISPATCH_FAILURES = frozenset({DeadLetterReason.DISPATCH_REFUSED, DeadLetterReason.DISPATCH_TARGET_MISSING})
_MARKED_NOT_FINISHED = frozenset({ExecutionStatus.DISPATCHED, ExecutionStatus.RUNNING})


@dataclass
class DispatchStep:
    repository: ExecutionStore
    github: GithubDispatcher
    runner_jobs: RunnerJobPublisher
    status_topic: str
    timeout_seconds: int
    retry_policy: DispatchRetryPolicy
    now: Callable[[], datetime]
    observe_dispatch: Callable[[str, float], None] = field(default=lambda runner, seconds: None)
    observe_set_aside: Callable[[str], None] = field(default=lambda runner: None)

    async def handle(self, records: Sequence[SourceRecord]) -> Effects:
        effects = Effects()
        executions = {}
        for record in records:
            execution = self._decode(record, effects)
            if execution is not None:
                executions[execution.execution_id] = (record, execution)
        # A job whose runner is unavailable is set aside inside `_dispatch`; what is retried here is
        # DynamoDB, for every tenant alike. Each execution until it is done: retrying the whole batch
        # instead would lose the events of those already marked and could send a job twice.
        waiting, attempt = list(executions.values()), 0
        while waiting:
            try:
                failed = await self._dispatch_all(waiting, effects)
            except RepositoryUnavailableError as error:
                failed = [(item, error) for item in waiting]
            waiting = [item for item, _ in failed]
            if waiting:
                await pause(attempt, f"{len(waiting)} dispatches", failed[0][1])
                attempt += 1
        return effects

    async def _dispatch_all(
        self, waiting: Sequence[tuple[SourceRecord, ExecutionRef]], effects: Effects
    ) -> list[tuple[tuple[SourceRecord, ExecutionRef], RepositoryUnavailableError]]:
        """One read of the batch's executions, then each dispatched; those DynamoDB failed."""
        stored = await self.repository.get_many([_key(reference) for _, reference in waiting])
        results = await asyncio.gather(
            *(self._dispatch(r, e, stored.get(_key(e)), effects) for r, e in waiting),
            return_exceptions=True,
        )
        failed = []
        for item, result in zip(waiting, results, strict=True):
            if isinstance(result, RepositoryUnavailableError):
                failed.append((item, result))
            elif isinstance(result, BaseException):
                raise result
        return failed

    def _decode(self, record: SourceRecord, effects: Effects) -> ExecutionRef | None:
        try:
            return ExecutionRef.model_validate(json.loads(record.value or b""))
        except (UnicodeDecodeError, json.JSONDecodeError, ValidationError) as error:
            effects.outgoing.append(dead_letter(record, DeadLetterReason.INVALID, str(error)))
            return None

    async def _dispatch(
        self, record: SourceRecord, reference: ExecutionRef, stored: Execution | None, effects: Effects
    ) -> None:
        key = _key(reference)
        if stored is None or stored.status in TERMINAL_STATUSES:
            trace = stored.trace if stored is not None else reference.trace
            effects.send(Destination.ALLOCATE, key.tenant_id, encode(release_of(reference)), trace)
            if stored is not None:
                self._fail_again(record, stored, effects)
            return
        if stored.status in _MARKED_NOT_FINISHED:
            await self._replay_mark(stored, effects)
        if stored.status is not ExecutionStatus.PENDING:
            return
        dispatched_at = self.now()
        deadline_at = dispatched_at + timedelta(seconds=self.timeout_seconds)
        try:
            run = await self._send_to_runner(stored, dispatched_at)
        except DispatchTargetError as error:
            await self._fail(record, stored, DeadLetterReason.DISPATCH_TARGET_MISSING, str(error), effects)
            return
        except DispatchRefusedError as error:
            await self._fail(record, stored, DeadLetterReason.DISPATCH_REFUSED, str(error), effects)
            return
        except DispatchUnavailableError as error:
            self._set_aside(reference, stored.trace, error, effects)
            return
        # The job is with its runner now: only the mark is retried, never the hand-over.
        change = StatusChange(
            ExecutionStatus.DISPATCHED,
            dispatched_at,
            deadline_at=deadline_at,
            workflow_run_id=run.workflow_run_id if run is not None else None,
            html_url=run.html_url if run is not None else None,
        )
        for attempt in itertools.count():
            try:
                await self._mark(stored, change, effects)
            except RepositoryUnavailableError as error:
                await pause(attempt, f"marking {stored.execution_id} dispatched", error)
            else:
                break
        self._lease(stored, deadline_at, effects)

    def _set_aside(
        self, reference: ExecutionRef, trace: TraceContext, error: DispatchUnavailableError, effects: Effects
    ) -> None:
        """The runner cannot take the job now: its slot's holder keeps it, with the time to try again,
        and the batch goes on (the watchdog fails it once its timeout passes)."""
        attempt = reference.dispatch_attempt
        retry_at = self.now() + timedelta(seconds=self.retry_policy.delay(attempt, error.retry_after))
        ids = job_fields(reference.tenant_id, reference.jit_event_id, reference.execution_id, trace.trace_id)
        logger.warning(
            "dispatch set aside: %s", error.reason, extra={**ids, "retry_at": retry_at.isoformat()}
        )
        aside = AllocationSetAside(
            tenant_id=reference.tenant_id,
            execution_id=reference.execution_id,
            job_runner=reference.job_runner,
            retry_at=retry_at,
            attempt=attempt + 1,
            reason=error.reason,
        )
        effects.send(Destination.ALLOCATE, reference.tenant_id, encode(aside), trace)
        self.observe_set_aside(reference.job_runner)

    def _lease(self, execution: Execution, deadline_at: datetime, effects: Effects) -> None:
        """The slot's holder learns the deadline the runner and the item have."""
        lease = AllocationLease(
            tenant_id=execution.tenant_id,
            execution_id=execution.execution_id,
            job_runner=execution.job_runner,
            deadline_at=deadline_at,
        )
        effects.send(Destination.ALLOCATE, execution.tenant_id, encode(lease), execution.trace)

    async def _send_to_runner(self, execution: Execution, dispatched_at: datetime) -> RunDetails | None:
        """The job to its runner; the run GitHub created, when it says."""
        started, run = time.perf_counter(), None
        if execution.job_runner == GITHUB_ACTIONS:
            run = await self.github.dispatch(github_workflow_target(execution))
        else:
            job = build_dispatched_job(execution, self.status_topic, self.timeout_seconds, dispatched_at)
            await self.runner_jobs.publish(job, execution.trace)
        self.observe_dispatch(execution.job_runner, time.perf_counter() - started)
        return run

    async def _fail(
        self,
        record: SourceRecord,
        execution: Execution,
        reason: DeadLetterReason,
        message: str,
        effects: Effects,
    ) -> None:
        ids = execution_fields(execution)
        logger.warning("dispatch failed: %s", message, extra={**ids, "reason": reason.value})
        change = StatusChange(ExecutionStatus.FAILED, self.now(), error=f"{reason.value}: {message}")
        await self._mark(execution, change, effects)
        trace = execution.trace
        effects.send(Destination.ALLOCATE, execution.tenant_id, encode(release_of(execution)), trace)
        effects.outgoing.append(dead_letter(record, reason, message, trace))

    def _fail_again(self, record: SourceRecord, stored: Execution, effects: Effects) -> None:
        """A replay of a dispatch that failed: a crash may have come before its event and its dead
        letter were sent, so both go out again."""
        reason_text, _, message = (stored.error or "").partition(": ")
        if reason_text not in _DISPATCH_FAILURES or stored.status is not ExecutionStatus.FAILED:
            return
        event = ExecutionEvent.from_change(stored, previous_status(stored))
        effects.publish(event, stored.trace)
        effects.outgoing.append(dead_letter(record, DeadLetterReason(reason_text), message, stored.trace))

    async def _mark(self, execution: Execution, change: StatusChange, effects: Effects) -> None:
        key = ExecutionKey.of(execution)
        result = await self.repository.update_status(key, change, execution.plan_item_slug)
        changed = result.execution
        if result.applied and changed is not None:
            previous = result.previous_status
        elif changed is not None and already_changed(changed, change.status, change.at):
            previous = previous_status(changed)  # an earlier attempt stored it; its answer was lost
        else:
            if changed is not None and change.status is ExecutionStatus.DISPATCHED:
                await self._stop_if_canceled(changed, change, effects)
            return
        event = ExecutionEvent.from_change(changed, previous)
        effects.publish(event, changed.trace)
        if change.status is ExecutionStatus.DISPATCHED:
            self._send_held_reports(changed, result.held_reports, effects)

    async def _stop_if_canceled(self, stored: Execution, change: StatusChange, effects: Effects) -> None:
        """Canceled while its job was being handed over: the runner has it, and is told to stop."""
        if stored.status is not ExecutionStatus.CANCELED:
            return
        handed_over = stored.model_copy(update=change.run_fields())
        logger.info("canceled during its dispatch: stopping it at its runner", extra=execution_fields(stored))
        await RunnerCancels(self.github).cancel(handed_over, self.now(), effects)

    async def _replay_mark(self, stored: Execution, effects: Effects) -> None:
        """A replay of a marked job: a crash may have come before the mark's event, its lease or the
        reports it found held were all sent. Sent again, they are the same ones (at-least-once, as
        every record here); the reports also while the job runs, since some of them may be applied."""
        held = await self.repository.held_reports(ExecutionKey.of(stored))
        if stored.status is ExecutionStatus.DISPATCHED:
            event = ExecutionEvent.from_change(stored, ExecutionStatus.PENDING)
            effects.publish(event, stored.trace)
            if stored.deadline_at is not None:
                self._lease(stored, parse_timestamp(stored.deadline_at), effects)
        self._send_held_reports(stored, held, effects)

    def _send_held_reports(
        self, execution: Execution, reports: Sequence[StatusChange], effects: Effects
    ) -> None:
        """Runners' reports that overtook the mark (held on the item) go to the status step again, in
        their order, now that the lifecycle takes them."""
        for report in reports:
            update = report.report(ExecutionKey.of(execution))
            effects.send(Destination.STATUS, execution.tenant_id, encode(update), execution.trace)


def _key(reference: ExecutionRef) -> ExecutionKey:
    return ExecutionKey(reference.tenant_id, reference.jit_event_id, reference.execution_id)
