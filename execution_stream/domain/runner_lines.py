"""One runner line of a tenant and the keys that belong to it, changed as one commit.

`Line`: one operation on a line (see `allocation.py` for the key scheme, `priority_queues.py` for
the queue's priority classes, `supersede_groups.py` for supersede groups, `line_records.py` for the
records it answers with). Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from execution_stream.domain.commits import Commit
from execution_stream.domain.line_records import (
    Admission,
    LineView,
    Memory,
    Outcome,
    Queued,
    Result,
    RunnerLine,
)
from execution_stream.domain.priority_queues import ClassCounters, admission_rank, queue_key
from execution_stream.domain.supersede_groups import Superseded, SupersedeGroup, group_key
from execution_stream.domain.trace import TRACEPARENT, TRACESTATE, TraceContext

_EMPTY_LINE = {"in_use": 0, "waiting": 0, "head": 0, "tail": 0, "released_head": 0, "released_tail": 0}
# Released ids forgotten per operation: enough to keep the ring bounded, cheap per message.
_FORGET_PER_OPERATION = 4


class Line:
    """One operation on a runner line and its keys."""

    def __init__(
        self,
        table: Mapping[str, Any],
        tenant: str,
        runner: str,
        limit: int,
        memory: Memory,
        *,
        aging_seconds: float = math.inf,
    ) -> None:
        self.tenant, self.runner = tenant, runner
        self.commit = Commit.open(table, line_key(tenant, runner), _EMPTY_LINE)
        self.classes = ClassCounters(self.commit.head)
        self.limit = limit
        self.memory = memory
        self.aging_seconds = aging_seconds

    def get(self, key: str) -> Any:
        return self.commit.get(key)

    @property
    def head(self) -> dict[str, Any]:
        return self.commit.head

    @property
    def in_use(self) -> int:
        return int(self.head["in_use"])

    @property
    def queued(self) -> int:
        return self.classes.total_waiting()

    def grant(
        self,
        execution_id: str,
        jit_event_id: str,
        now: float,
        trace: TraceContext | None = None,
        group: str | None = None,
    ) -> Admission:
        holder = {"runner": self.runner, "jit_event_id": jit_event_id, "granted_at": now, "deadline_at": None}
        holder.update(_group_field(group))
        self.commit.set(holder_key(self.tenant, execution_id), {**holder, **trace_fields(trace)})
        self.head["in_use"] += 1
        return Admission(self.tenant, execution_id, jit_event_id, self.runner, trace)

    def enqueue(
        self,
        execution_id: str,
        jit_event_id: str,
        now: float,
        trace: TraceContext | None = None,
        *,
        priority: int = 0,
        group: str | None = None,
    ) -> Queued:
        index = self.classes.next_index(priority)
        reference = {"execution_id": execution_id, "jit_event_id": jit_event_id, "enqueued_at": now}
        reference.update(_group_field(group))
        reference.update(trace_fields(trace))
        self.commit.set(queue_key(self.tenant, priority, index, self.runner), reference)
        member: dict[str, Any] = {"state": "queued", "runner": self.runner, "index": index}
        if priority:
            member["priority"] = priority
        self.commit.set(member_key(self.tenant, execution_id), member)
        return Queued(self.tenant, execution_id, jit_event_id, self.runner, index, priority)

    def remove(self, execution_id: str, now: float) -> bool:
        """Out of its slot or its queue, remembered as released; False if it was in neither."""
        held_key = holder_key(self.tenant, execution_id)
        held = self.get(held_key)
        if held is not None:
            self.commit.delete(held_key)
            self.head["in_use"] = max(0, self.in_use - 1)
            group = held.get("group")
        else:
            waiting = self._take_out_of_queue(execution_id)
            if waiting is None:
                return False
            group = waiting.get("group")
        self._forget_group(group, execution_id)
        self._remember_released(execution_id, now)
        return True

    def admit_waiting(self, now: float) -> list[Admission]:
        admitted = []
        while self.in_use < self.limit:
            chosen = self._next_waiting(now)
            if chosen is None:
                break
            priority, waiting = chosen
            self._take_head(priority, waiting["execution_id"])
            ids = (waiting["execution_id"], waiting["jit_event_id"])
            admitted.append(self.grant(*ids, now, trace_of(waiting), waiting.get("group")))
        return admitted

    def supersede(
        self, group: SupersedeGroup, execution_id: str, jit_event_id: str, now: float
    ) -> list[Superseded]:
        """The group's recorded execution superseded by this one, which the group records now."""
        key = group_key(self.tenant, group.key, self.runner)
        recorded = self.get(key)
        superseded = []
        if recorded is not None and recorded["execution_id"] != execution_id:
            superseded = self._superseded(recorded, group, execution_id, now)
        self.commit.set(key, {"execution_id": execution_id, "jit_event_id": jit_event_id})
        return superseded

    def forget_released(self, now: float) -> None:
        head, tail = self.head["released_head"], self.head["released_tail"]
        for _ in range(_FORGET_PER_OPERATION):
            if head >= tail:
                break
            ring_at = ring_key(self.tenant, head, self.runner)
            execution_id = self.get(ring_at)
            member_at = member_key(self.tenant, execution_id) if execution_id else ""
            member = self.get(member_at) if member_at else None
            if member is not None and member["state"] == "released":
                if tail - head <= self.memory.count and member["forget_at"] > now:
                    break
                self.commit.delete(member_at)
            self.commit.delete(ring_at)
            head += 1
        self.head["released_head"] = head

    def view(self) -> LineView:
        return LineView(self.tenant, self.runner, self._runner_line(self.commit.version), self._oldest())

    def result(
        self,
        outcome: Outcome,
        admitted: list[Admission],
        queued: Queued | None = None,
        superseded: list[Superseded] | None = None,
    ) -> Result:
        writes = self.commit.writes()
        # As the line will be once the writes are applied; the oldest waiting is not looked up.
        after = self._runner_line(self.commit.version + 1) if writes else None
        view = LineView(self.tenant, self.runner, after, None) if after else None
        return Result(outcome, admitted, writes, queued, view, superseded or [])

    def _superseded(
        self, recorded: Mapping[str, Any], group: SupersedeGroup, replaced_by: str, now: float
    ) -> list[Superseded]:
        """The recorded execution out of its queue, or reported to cancel when it holds a slot and
        the group cancels what is in progress; nothing once it ended."""
        ids = (self.tenant, recorded["execution_id"], recorded["jit_event_id"], self.runner, replaced_by)
        held = self.get(holder_key(self.tenant, recorded["execution_id"]))
        if held is not None:
            return [Superseded(*ids, False, trace_of(held))] if group.cancel_in_progress else []
        queued_at = self._queued_at(recorded["execution_id"])
        if queued_at is None:
            return []
        waiting = self.get(queued_at[1]) or {}
        self.remove(recorded["execution_id"], now)
        return [Superseded(*ids, True, trace_of(waiting))]

    def _queued_at(self, execution_id: str) -> tuple[int, str] | None:
        """Its class and queue key while it waits in the line's queue."""
        member = self.get(member_key(self.tenant, execution_id))
        if member is None or member["state"] != "queued":
            return None
        priority = member.get("priority", 0)
        return priority, queue_key(self.tenant, priority, member["index"], self.runner)

    def _take_out_of_queue(self, execution_id: str) -> dict[str, Any] | None:
        """Its queued reference, taken out of its class's queue; None if it does not wait."""
        queued_at = self._queued_at(execution_id)
        if queued_at is None:
            return None
        priority, key = queued_at
        waiting = self.get(key)
        self.commit.delete(key)
        self.classes.one_less_waiting(priority)
        self._head_reference(priority)
        return waiting if waiting is not None else {}

    def _remember_released(self, execution_id: str, now: float) -> None:
        member = {"state": "released", "runner": self.runner, "forget_at": now + self.memory.seconds}
        self.commit.set(member_key(self.tenant, execution_id), member)
        ring = self.head["released_tail"]
        self.commit.set(ring_key(self.tenant, ring, self.runner), execution_id)
        self.head["released_tail"] = ring + 1

    def _forget_group(self, group: str | None, execution_id: str) -> None:
        """A group whose recorded execution leaves has nothing left to supersede: its key goes."""
        if group is None:
            return
        key = group_key(self.tenant, group, self.runner)
        recorded = self.get(key)
        if recorded is not None and recorded["execution_id"] == execution_id:
            self.commit.delete(key)

    def _next_waiting(self, now: float) -> tuple[int, dict[str, Any]] | None:
        """The class admitted next and its head's reference (see `priority_queues`), or None."""
        best: tuple[int, dict[str, Any]] | None = None
        best_rank: tuple[int, float, int] | None = None
        for priority in self.classes.waiting_classes():
            waiting = self._head_reference(priority)
            if waiting is None:
                continue
            rank = admission_rank(priority, waiting["enqueued_at"], now, self.aging_seconds)
            if best_rank is None or rank < best_rank:
                best, best_rank = (priority, waiting), rank
        return best

    def _take_head(self, priority: int, execution_id: str) -> None:
        self.commit.delete(queue_key(self.tenant, priority, self.classes.head_index(priority), self.runner))
        self.commit.delete(member_key(self.tenant, execution_id))
        self.classes.advance_head(priority)
        self.classes.one_less_waiting(priority)
        self._head_reference(priority)

    def _head_reference(self, priority: int) -> dict[str, Any] | None:
        """The reference at the class's head, past the empty indexes there, so that positions count
        only those still waiting ahead (each index is passed once: constant time on average)."""
        first = head = self.classes.head_index(priority)
        tail, waiting = self.classes.tail_index(priority), None
        while head < tail:
            waiting = self.get(queue_key(self.tenant, priority, head, self.runner))
            if waiting is not None:
                break
            head += 1
        if head != first:
            self.classes.advance_head(priority, head - first)
        return waiting

    def _runner_line(self, version: int) -> RunnerLine:
        classes = {priority: self.classes.queue(priority) for priority in self.classes.used()}
        zero = classes[0]
        return RunnerLine(self.in_use, self.queued, zero.head, zero.tail, version, classes)

    def _oldest(self) -> float | None:
        heads = (
            self.get(queue_key(self.tenant, priority, self.classes.head_index(priority), self.runner))
            for priority in self.classes.waiting_classes()
        )
        return min((waiting["enqueued_at"] for waiting in heads if waiting is not None), default=None)


def _group_field(group: str | None) -> dict[str, str]:
    return {"group": group} if group is not None else {}


def trace_fields(trace: TraceContext | None) -> dict[str, str]:
    """What a holder's or a queued execution's record keeps of its trace context."""
    return trace.fields() if trace is not None else {}


def trace_of(record: Mapping[str, Any]) -> TraceContext | None:
    """The trace context a holder's or a queued execution's record kept (none in older records)."""
    return TraceContext.parse(record.get(TRACEPARENT), record.get(TRACESTATE))


def line_key(tenant: str, runner: str) -> str:
    return f"L#{tenant}#{runner}"


def holder_key(tenant: str, execution_id: str) -> str:
    return f"H#{tenant}#{execution_id}"


def member_key(tenant: str, execution_id: str) -> str:
    return f"M#{tenant}#{execution_id}"


def ring_key(tenant: str, n: int, runner: str) -> str:
    return f"R#{tenant}#{n}#{runner}"
