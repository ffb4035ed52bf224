"""A tenant's runner capacity at any backlog: who holds a slot, who waits, in arrival order.

State lives in one key-value table (a faust table in the worker, a dict in tests), one small value
per key, so that every operation reads and writes a handful of keys whatever the backlog. Each
tenant and runner has a *line*, the head of a `commits.Commit`, and the keys that belong to it:
- "L#<tenant>#<runner>"          the line: slots in use, the queue's head and tail, released ring
- "H#<tenant>#<execution_id>"    a holder: runner, jit_event_id, granted_at, deadline_at, trace context
- "Q#<tenant>#<index>#<runner>"  a queued execution's reference (with its trace context), at its index
- "M#<tenant>#<execution_id>"    where a waiting execution is queued, or that it was released lately
- "R#<tenant>#<n>#<runner>"      the ring of released ids, forgotten by age and count
Every key starts with the tenant, so it stays on the tenant's partition. Operations return the
writes to apply once their effects are sent. A slot is held until its execution is released: no
time reclaims it; the watchdog fails an overdue execution, and its final status releases the slot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from execution_stream.domain.commits import VERSION, resolve
from execution_stream.domain.runner_lines import (
    Admission,
    LimitFor,
    Line,
    LineView,
    Memory,
    Outcome,
    Queued,
    Result,
    RunnerLine,
    holder_key,
    line_key,
    member_key,
    trace_of,
)
from execution_stream.domain.trace import TraceContext

__all__ = [
    "Admission",
    "Allocator",
    "DueRetry",
    "LineView",
    "Memory",
    "Outcome",
    "Overdue",
    "Queued",
    "Result",
    "RunnerLine",
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
    def __init__(self, table: Mapping[str, Any], limit_for: LimitFor, memory: Memory) -> None:
        self.table = table
        self.limit_for = limit_for
        self.memory = memory

    def request(
        self,
        tenant: str,
        execution_id: str,
        jit_event_id: str,
        runner: str,
        *,
        now: float,
        trace: TraceContext | None = None,
    ) -> Result:
        """Admit the execution into a free slot of its runner, or queue it behind those waiting.

        One that holds a slot, waits, or was released lately is a DUPLICATE and changes nothing;
        one that holds a slot is forwarded again (the first forward may be the one a crash lost).
        """
        line = self._line(tenant, runner)
        held = line.get(holder_key(tenant, execution_id))
        if held is not None:
            again = Admission(tenant, execution_id, jit_event_id, runner, trace_of(held) or trace)
            return line.result(Outcome.DUPLICATE, [again])
        member = line.get(member_key(tenant, execution_id))
        if member is not None:
            # Said again where it waits: a crash may have lost the first word of it.
            queued = member["state"] == "queued"
            waiting = Queued(tenant, execution_id, jit_event_id, runner, member["index"]) if queued else None
            return line.result(Outcome.DUPLICATE, [], waiting)
        line.forget_released(now)
        admitted = line.admit_waiting(now)
        if line.queued == 0 and line.in_use < line.limit:
            admitted.append(line.grant(execution_id, jit_event_id, now, trace))
            return line.result(Outcome.ADMITTED, admitted)
        queued = line.enqueue(execution_id, jit_event_id, now, trace)
        return line.result(Outcome.QUEUED, admitted, queued)

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
        line = self._line(tenant, runner)
        key = holder_key(tenant, execution_id)
        held = line.get(key)
        if held is not None and held.get("deadline_at") != deadline_at:
            line.commit.set(key, {**held, "deadline_at": deadline_at})
        return line.result(Outcome.NONE, [])

    def set_aside(
        self, tenant: str, execution_id: str, runner: str, *, retry_at: float, attempt: int, reason: str
    ) -> Result:
        """A holder not dispatched yet waits for its runner until `retry_at`; a dispatched one, or
        one no longer holding, changes nothing (a late message)."""
        line = self._line(tenant, runner)
        key = holder_key(tenant, execution_id)
        held = line.get(key)
        if held is not None and held.get("deadline_at") is None:
            aside = {"retry_at": retry_at, "attempt": attempt, "set_aside": reason[:MAX_REASON_LENGTH]}
            line.commit.set(key, {**held, **aside})
        return line.result(Outcome.NONE, [])

    def overdue(self, now: float, timeout_seconds: float) -> list[Overdue]:
        """Holders past their deadline; one not dispatched yet is timed from its grant, with the
        timeout as it is set now. Longest overdue first."""
        late = []
        for tenant, execution_id, held in self._holders():
            deadline = held.get("deadline_at")
            if deadline is None:
                deadline = held["granted_at"] + timeout_seconds
            if now > deadline:
                why = held.get("set_aside") if held.get("deadline_at") is None else None
                runner = held["runner"]
                late.append(
                    Overdue(tenant, execution_id, held["jit_event_id"], runner, deadline, why, trace_of(held))
                )
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
        return Line(self.table, tenant, runner, self.limit(tenant, runner), self.memory)

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
