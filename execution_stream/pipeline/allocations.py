"""allocate-runner-resource: one tenant's slots, requests, releases and deadlines in their order.

The step decides and returns the table writes with the effects; the agent sends the effects and only
then applies the writes, so state in the table never runs ahead of what was sent. In a batch, each
decision reads the table as the writes before it will leave it (`commits.Pending`), and each record's
writes are applied with that record in hand (a faust table takes a write's changelog partition from it).
A request of an execution that holds a slot already is forwarded again, because the first forward
may be the one a crash lost; dispatching drops it if it is done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from execution_stream.domain import commits
from execution_stream.domain.allocation import (
    DEFAULT_AGING_SECONDS,
    Admission,
    Allocator,
    Memory,
    Overdue,
    Result,
    SupersedeGroup,
)
from execution_stream.domain.commands import CancelCommand
from execution_stream.domain.models import CancelReason, ExecutionStatus, ExecutionStatusUpdate
from execution_stream.domain.trace import TraceContext
from execution_stream.pipeline.messages import (
    AllocationCancelRequested,
    AllocationLease,
    AllocationMessageType,
    AllocationRedispatch,
    AllocationRefill,
    AllocationRelease,
    AllocationRequest,
    AllocationSetAside,
    Destination,
    Effects,
    ExecutionRef,
    Outgoing,
    SourceRecord,
    allocation_message,
    decode_keyed_by_tenant,
    encode,
)
from execution_stream.pipeline.ports import QueueView, TenantFilter, every_tenant

TIMEOUT_ERROR = "timeout"


@dataclass(frozen=True)
class Limits:
    default: int
    per_tenant: Mapping[str, int]

    def of(self, tenant: str, runner: str) -> int:
        return self.per_tenant.get(tenant, self.default)


@dataclass
class AllocationStep:
    table: MutableMapping[str, Any]
    limits: Limits
    memory: Memory
    queue_view: QueueView
    now: Callable[[], datetime]
    aging_seconds: float = DEFAULT_AGING_SECONDS
    # Retries sent by this worker, by execution id, with the retry time they answered.
    _retries_sent: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.allocator = self._allocator(self.table)

    def _allocator(self, table: Mapping[str, Any]) -> Allocator:
        return Allocator(table, self.limits.of, self.memory, aging_seconds=self.aging_seconds)

    async def handle(self, records: Sequence[SourceRecord]) -> Effects:
        """The records' effects in their order, each with its table writes to apply once they are
        sent. Each decision sees the writes of those before it in the batch."""
        effects = Effects()
        pending = commits.Pending(self.table)
        allocator = self._allocator(pending)
        for record in records:
            message = decode_keyed_by_tenant(allocation_message, record)
            if isinstance(message, Outgoing):
                effects.outgoing.append(message)
                continue
            result, forwarded = self.decide(message, allocator)
            pending.apply(result.writes)
            effects.merge(forwarded)
            effects.then_store(partial(self.commit, result), source=record)
        return effects

    def decide(
        self, message: AllocationMessageType, allocator: Allocator | None = None
    ) -> tuple[Result, Effects]:
        """The decision, with the table writes to apply once the returned effects are sent."""
        allocator = allocator or self.allocator
        now, tenant = self.now().timestamp(), message.tenant_id
        if isinstance(message, AllocationRequest):
            return self._request(message, allocator, now)
        if isinstance(message, AllocationRelease):
            result = allocator.release(tenant, message.execution_id, message.job_runner or None, now=now)
        elif isinstance(message, AllocationLease):
            deadline = message.deadline_at.timestamp()
            result = allocator.set_deadline(tenant, message.execution_id, message.job_runner, deadline)
        elif isinstance(message, AllocationSetAside):
            result = allocator.set_aside(
                tenant,
                message.execution_id,
                message.job_runner,
                retry_at=message.retry_at.timestamp(),
                attempt=message.attempt,
                reason=message.reason,
            )
        elif isinstance(message, AllocationRedispatch):
            retry_at = message.retry_at.timestamp()
            result = allocator.redispatch(
                tenant, message.execution_id, message.job_runner, retry_at=retry_at, now=now
            )
        elif isinstance(message, AllocationCancelRequested):
            confirm_by = message.confirm_by.timestamp()
            result = allocator.cancel_requested(
                tenant, message.execution_id, message.job_runner, confirm_by=confirm_by
            )
        else:
            result = allocator.refill(tenant, message.job_runner, now=now)
        return result, _forwarded(result.admitted)

    def _request(
        self, message: AllocationRequest, allocator: Allocator, now: float
    ) -> tuple[Result, Effects]:
        """Admitted or queued by its priority; what its supersede group replaces is canceled."""
        group = None
        if message.supersede_group is not None:
            group = SupersedeGroup(message.supersede_group, message.cancel_in_progress)
        ids = (message.tenant_id, message.execution_id, message.jit_event_id, message.job_runner)
        result = allocator.request(*ids, now=now, trace=message.trace, priority=message.priority, group=group)
        effects = _forwarded(result.admitted)
        for superseded in result.superseded:
            command = CancelCommand(
                tenant_id=superseded.tenant_id,
                execution_id=superseded.execution_id,
                jit_event_id=superseded.jit_event_id,
                reason=CancelReason.SUPERSEDED,
                superseded_by=superseded.replaced_by,
            )
            trace = _carried(superseded.trace, superseded.execution_id)
            effects.send(Destination.COMMANDS, superseded.tenant_id, encode(command), trace)
        return result, effects

    def commit(self, result: Result) -> None:
        """Apply the writes (after the effects were sent) and show the line where users see it."""
        commits.apply(self.table, result.writes)
        if result.queued is not None:
            self.queue_view.queued(result.queued)
        if result.line is not None:
            view = result.line
            limit = self.allocator.limit(view.tenant_id, view.runner)
            self.queue_view.line_changed(view.tenant_id, view.runner, view.line, limit)

    def overdue(self, timeout_seconds: float, owns: TenantFilter = every_tenant) -> Effects:
        """Failures to report for executions holding a slot past their deadline (the watchdog)."""
        now = self.now()
        effects = Effects()
        for late in self.allocator.overdue(now.timestamp(), timeout_seconds):
            if not owns(late.tenant_id):
                continue
            update = ExecutionStatusUpdate(
                tenant_id=late.tenant_id,
                jit_event_id=late.jit_event_id,
                execution_id=late.execution_id,
                status=ExecutionStatus.CANCELED if late.cancel_unconfirmed else ExecutionStatus.FAILED,
                error=_overdue_error(late),
                at=now,
            )
            trace = _carried(late.trace, late.execution_id)
            effects.send(Destination.STATUS, late.tenant_id, encode(update), trace)
        return effects

    def due_retries(self, owns: TenantFilter = every_tenant) -> Effects:
        """Set-aside dispatches whose time has come go to enrich-and-dispatch again, once per
        retry time from this worker (a new failure sets a new time)."""
        effects = Effects()
        due = [d for d in self.allocator.due_retries(self.now().timestamp()) if owns(d.tenant_id)]
        due_ids = {retry.execution_id for retry in due}
        self._retries_sent = {eid: at for eid, at in self._retries_sent.items() if eid in due_ids}
        for retry in due:
            if self._retries_sent.get(retry.execution_id) == retry.retry_at:
                continue
            self._retries_sent[retry.execution_id] = retry.retry_at
            ids = (retry.tenant_id, retry.jit_event_id, retry.execution_id, retry.runner)
            trace = _carried(retry.trace, retry.execution_id)
            reference = _reference(*ids, trace=trace, dispatch_attempt=retry.attempt)
            effects.send(Destination.ENRICH, retry.tenant_id, encode(reference), trace)
        return effects

    def waiting_by_tenant(self, owns: TenantFilter = every_tenant) -> list[tuple[str, int, float | None]]:
        """Per tenant: executions waiting for a slot, and since when the oldest waits."""
        waiting: dict[str, tuple[int, float | None]] = {}
        for view in self.allocator.lines():
            if not owns(view.tenant_id):
                continue
            count, oldest = waiting.get(view.tenant_id, (0, None))
            since = view.oldest_waiting_since
            if since is not None:
                oldest = since if oldest is None else min(oldest, since)
            waiting[view.tenant_id] = (count + view.line.queued, oldest)
        return [(tenant, count, oldest) for tenant, (count, oldest) in waiting.items()]

    def refills(self, owns: TenantFilter = every_tenant) -> Effects:
        """A refill for every runner line with free slots and executions waiting (a raised limit)."""
        effects = Effects()
        for view in self.allocator.lines():
            limit = self.allocator.limit(view.tenant_id, view.runner)
            if owns(view.tenant_id) and view.line.queued and view.line.in_use < limit:
                refill = AllocationRefill(tenant_id=view.tenant_id, job_runner=view.runner)
                effects.send(Destination.ALLOCATE, view.tenant_id, encode(refill))
        return effects


def _overdue_error(late: Overdue) -> str:
    if late.cancel_unconfirmed:
        return "canceled: the runner did not confirm the cancel in time"
    if late.set_aside is not None:
        return f"{TIMEOUT_ERROR}: never dispatched: {late.set_aside}"
    return TIMEOUT_ERROR


def _forwarded(admitted: list[Admission]) -> Effects:
    effects = Effects()
    for admission in admitted:
        ids = (admission.tenant_id, admission.jit_event_id, admission.execution_id, admission.runner)
        trace = _carried(admission.trace, admission.execution_id)
        effects.send(Destination.ENRICH, admission.tenant_id, encode(_reference(*ids, trace=trace)), trace)
    return effects


def _reference(
    tenant_id: str,
    jit_event_id: str,
    execution_id: str,
    runner: str,
    *,
    trace: TraceContext,
    dispatch_attempt: int = 0,
) -> ExecutionRef:
    return ExecutionRef(
        tenant_id=tenant_id,
        jit_event_id=jit_event_id,
        execution_id=execution_id,
        job_runner=runner,
        dispatch_attempt=dispatch_attempt,
        traceparent=trace.traceparent,
        tracestate=trace.tracestate,
    )


def _carried(trace: TraceContext | None, execution_id: str) -> TraceContext:
    """A slot's record written before trace contexts were kept has none: one derived from the
    execution's id stands in, as it does on the execution's other records."""
    return trace if trace is not None else TraceContext.derived(execution_id)
