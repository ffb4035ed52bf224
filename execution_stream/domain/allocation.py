"""A tenant's runner capacity at any backlog: who holds a slot, who waits, by priority and arrival.

State lives in one key-value table (a faust table in the worker, a dict in tests), one small value
per key, so that every operation reads and writes a handful of keys whatever the backlog. Each
tenant and runner has a *line*, the head of a `commits.Commit`, and the keys that belong to it:
- "L#<tenant>#<runner>"          the line: slots in use, per priority class the queue's head, tail
                                 and count waiting, the released ring
- "H#<tenant>#<execution_id>"    a holder: runner, jit_event_id, granted_at, deadline_at, trace
                                 context, supersede group
- "Q#<tenant>#<index>#<runner>"  a class-0 queued execution's reference (trace context, supersede
                                 group), at its index; class c (1..9) at "Q#<tenant>#<c>:<index>#<runner>"
- "M#<tenant>#<execution_id>"    where a waiting execution is queued (index, class unless 0), or
                                 that it was released lately
- "R#<tenant>#<n>#<runner>"      the ring of released ids, forgotten by age and count
- "S#<tenant>#<group>#<runner>"  a supersede group's latest execution
Every key starts with the tenant, so it stays on the tenant's partition. Operations return the
writes to apply once their effects are sent. A slot is held until its execution is released: no
time reclaims it; the watchdog fails an overdue execution, and its final status releases the slot.
The queue's classes and the admission order: `priority_queues` (a line written before classes
existed is all class 0); supersede groups: `supersede_groups`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from execution_stream.domain.commits import VERSION, resolve
from execution_stream.domain.line_records import (
    Admission,
    LimitFor,
    LineView,
    Memory,
    Outcome,
    Queued,
    Result,
    RunnerLine,
)
from execution_stream.domain.priority_queues import (
    DEFAULT_AGING_SECONDS,
    ClassQueue,
    checked_aging,
    checked_priority,
)
from execution_stream.domain.runner_lines import Line, holder_key, line_key, member_key, trace_of
from execution_stream.domain.supersede_groups import Superseded, SupersedeGroup
from execution_stream.domain.trace import TraceContext

__all__ = [
    "DEFAULT_AGING_SECONDS",
    "Admission",
    "Allocator",
    "ClassQueue",
    "DueRetry",
    "LineView",
    "Memory",
    "Outcome",
    "Overdue",
    "Queued",
    "Result",
    "RunnerLine",
    "SupersedeGroup",
    "Superseded",
]


@dataclass(frozen=True)
class Overdue:
    tenant_id: str
    execution_id: str
    jit_event_id: str
    runner: str
    deadline_at: float
    set_aside: str | None = None  # why its dispatch waited, when it never left
    trace: TraceContext | None = None
    # Asked to cancel at its runner, which did not confirm by `deadline_at` (the grace period's end).
    cancel_unconfirmed: bool = False


@dataclass(frozen=True)
class DueRetry:
    """A holder whose dispatch was set aside and may be tried again now."""

    tenant_id: str
    execution_id: str
    jit_event_id: str
    runner: str
    retry_at: float
    attempt: int
    trace: TraceContext | None = None


MAX_REASON_LENGTH = 300  # a holder's record stays small on the changelog


class Allocator:
    """`aging_seconds`: how long a queued execution waits to gain one priority class (see
    `priority_queues`); `math.inf` for none, strict classes."""

    def __init__(
        self,
        table: Mapping[str, Any],
        limit_for: LimitFor,
        memory: Memory,
        *,
        aging_seconds: float = DEFAULT_AGING_SECONDS,
    ) -> None:
        self.table = table
        self.limit_for = limit_for
        self.memory = memory
        self.aging_seconds = checked_aging(aging_seconds)

    def request(
        self,
        tenant: str,
        execution_id: str,
        jit_event_id: str,
        runner: str,
        *,
        now: float,
        trace: TraceContext | None = None,
        priority: int = 0,
        group: SupersedeGroup | None = None,
    ) -> Result:
        """Admit the execution into a free slot of its runner, or queue it in its priority class.

        One that holds a slot, waits, or was released lately is a DUPLICATE and changes nothing;
        one that holds a slot is forwarded again (the first forward may be the one a crash lost).
        With a group, it first supersedes the group's latest execution (see `supersede_groups`).
        Those already waiting take free slots (a raised limit) before it, whatever its priority.
        """
        checked_priority(priority)
        line = self._line(tenant, runner)
        duplicate = _duplicate(line, execution_id, jit_event_id, trace)
        if duplicate is not None:
            return duplicate
        line.forget_released(now)
        superseded = line.supersede(group, execution_id, jit_event_id, now) if group else []
        admitted = line.admit_waiting(now)
        group_key = group.key if group else None
        if line.queued == 0 and line.in_use < line.limit:
            admitted.append(line.grant(execution_id, jit_event_id, now, trace, group_key))
            return line.result(Outcome.ADMITTED, admitted, superseded=superseded)
        queued = line.enqueue(execution_id, jit_event_id, now, trace, priority=priority, group=group_key)
        return line.result(Outcome.QUEUED, admitted, queued, superseded)

    def release(self, tenant: str, execution_id: str, runner: str | None, *, now: float) -> Result:
        """Free the execution's slot, or take it out of its queue, and admit whoever waits next.

        An execution neither holding a slot nor queued releases nothing. Without the runner, the
        holder's or queue member's record names it.
        """
        runner = runner or self._runner_of(tenant, execution_id)
        if runner is None:
            return Result(Outcome.NONE, [], [])
        line = self._line(tenant, runner)
        if not line.remove(execution_id, now):
            return line.result(Outcome.NONE, [])
        line.forget_released(now)
        # Released before admitting, so an execution canceled while queued is never admitted here.
        return line.result(Outcome.NONE, line.admit_waiting(now))

    def refill(self, tenant: str, runner: str, *, now: float) -> Result:
        """Admit into free slots (after a raised limit): a tenant with nothing new needs this."""
        line = self._line(tenant, runner)
        return line.result(Outcome.NONE, line.admit_waiting(now))

    def set_deadline(self, tenant: str, execution_id: str, runner: str, deadline_at: float) -> Result:
        """The deadline fixed at dispatch; only a holder has one (a late message changes nothing)."""
        line, key, held = self._holder(tenant, execution_id, runner)
        if held is not None and held.get("deadline_at") != deadline_at:
            line.commit.set(key, {**held, "deadline_at": deadline_at})
        return line.result(Outcome.NONE, [])

    def set_aside(
        self, tenant: str, execution_id: str, runner: str, *, retry_at: float, attempt: int, reason: str
    ) -> Result:
        """A holder not dispatched yet waits for its runner until `retry_at`; a dispatched one, or
        one no longer holding, changes nothing (a late message)."""
        line, key, held = self._holder(tenant, execution_id, runner)
        if held is not None and held.get("deadline_at") is None:
            aside = {"retry_at": retry_at, "attempt": attempt, "set_aside": reason[:MAX_REASON_LENGTH]}
            line.commit.set(key, {**held, **aside})
        return line.result(Outcome.NONE, [])

    def redispatch(
        self, tenant: str, execution_id: str, runner: str, *, retry_at: float, now: float
    ) -> Result:
        """A holder whose job failed retryably keeps its slot and is dispatched again at `retry_at`,
        timed from now (its old deadline is gone); one no longer holding changes nothing."""
        line, key, held = self._holder(tenant, execution_id, runner)
        if held is not None:
            again = {**held, "deadline_at": None, "granted_at": now, "retry_at": retry_at, "attempt": 0}
            again.pop("set_aside", None)
            line.commit.set(key, again)
        return line.result(Outcome.NONE, [])

    def cancel_requested(self, tenant: str, execution_id: str, runner: str, *, confirm_by: float) -> Result:
        """A holder asked to cancel at its runner: overdue at `confirm_by` unless it ends before."""
        line, key, held = self._holder(tenant, execution_id, runner)
        if held is not None and held.get("confirm_by") != confirm_by:
            line.commit.set(key, {**held, "confirm_by": confirm_by})
        return line.result(Outcome.NONE, [])

    def overdue(self, now: float, timeout_seconds: float) -> list[Overdue]:
        """Holders past their deadline, or past the end of a cancel's grace period; one not
        dispatched yet is timed from its grant, with the timeout as it is set now. Longest overdue
        first."""
        late = []
        for tenant, execution_id, held in self._holders():
            overdue = _overdue(tenant, execution_id, held, now, timeout_seconds)
            if overdue is not None:
                late.append(overdue)
        return sorted(late, key=lambda o: (o.deadline_at, o.tenant_id, o.execution_id))

    def due_retries(self, now: float) -> list[DueRetry]:
        """Holders set aside whose retry time has come, and that are still not dispatched."""
        due = []
        for tenant, execution_id, held in self._holders():
            retry_at = held.get("retry_at")
            if retry_at is not None and held.get("deadline_at") is None and retry_at <= now:
                ids = (tenant, execution_id, held["jit_event_id"], held["runner"])
                due.append(DueRetry(*ids, retry_at, held["attempt"], trace_of(held)))
        return due

    def _holders(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        # The keys only: a (key, value) pair per queued execution would cost ~0.3 s at 100,000.
        for key in list(self.table):
            record = self.table.get(key) if key.startswith("H#") else None
            if record is None:
                continue
            _, tenant, execution_id = key.split("#", 2)
            held = self._resolved_holder(tenant, record)
            if held is not None:
                yield tenant, execution_id, held

    def lines(self) -> Iterator[LineView]:
        for key in list(self.table):
            if key.startswith("L#"):
                _, tenant, runner = key.split("#", 2)
                yield self._line(tenant, runner).view()

    def line(self, tenant: str, runner: str) -> LineView:
        return self._line(tenant, runner).view()

    def limit(self, tenant: str, runner: str) -> int:
        limit = self.limit_for(tenant, runner)
        if limit < 0:
            raise ValueError(f"the limit of runner {runner!r} must not be negative, not {limit}")
        return limit

    def _line(self, tenant: str, runner: str) -> Line:
        limit = self.limit(tenant, runner)
        return Line(self.table, tenant, runner, limit, self.memory, aging_seconds=self.aging_seconds)

    def _holder(self, tenant: str, execution_id: str, runner: str) -> tuple[Line, str, dict[str, Any] | None]:
        """The line, the holder's key and its record (None when the execution holds no slot)."""
        line = self._line(tenant, runner)
        key = holder_key(tenant, execution_id)
        return line, key, line.get(key)

    def _runner_of(self, tenant: str, execution_id: str) -> str | None:
        for key in (holder_key(tenant, execution_id), member_key(tenant, execution_id)):
            record = self.table.get(key)
            for value in (record["val"], record["prev"]) if record else ():
                if value is not None and value.get("runner"):
                    return str(value["runner"])
        return None

    def _resolved_holder(self, tenant: str, record: Mapping[str, Any]) -> dict[str, Any] | None:
        known = record["val"] or record["prev"]
        if known is None:
            return None
        line = self.table.get(line_key(tenant, known["runner"]))
        held: dict[str, Any] | None = resolve(record, line[VERSION] if line else 0)
        return held


def _overdue(
    tenant: str, execution_id: str, held: Mapping[str, Any], now: float, timeout_seconds: float
) -> Overdue | None:
    ids = (tenant, execution_id, held["jit_event_id"], held["runner"])
    confirm_by = held.get("confirm_by")
    if confirm_by is not None and now > confirm_by:
        return Overdue(*ids, confirm_by, trace=trace_of(held), cancel_unconfirmed=True)
    deadline = held.get("deadline_at")
    if deadline is None:
        deadline = held["granted_at"] + timeout_seconds
    if now <= deadline:
        return None
    why = held.get("set_aside") if held.get("deadline_at") is None else None
    return Overdue(*ids, deadline, why, trace_of(held))


def _duplicate(line: Line, execution_id: str, jit_event_id: str, trace: TraceContext | None) -> Result | None:
    """The answer to a request of an execution that holds a slot, waits, or was released lately."""
    tenant, runner = line.tenant, line.runner
    held = line.get(holder_key(tenant, execution_id))
    if held is not None:
        again = Admission(tenant, execution_id, jit_event_id, runner, trace_of(held) or trace)
        return line.result(Outcome.DUPLICATE, [again])
    member = line.get(member_key(tenant, execution_id))
    if member is None:
        return None
    # Said again where it waits: a crash may have lost the first word of it.
    waiting = None
    if member["state"] == "queued":
        index, priority = member["index"], member.get("priority", 0)
        waiting = Queued(tenant, execution_id, jit_event_id, runner, index, priority)
    return line.result(Outcome.DUPLICATE, [], waiting)
