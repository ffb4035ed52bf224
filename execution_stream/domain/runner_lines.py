"""One runner line of a tenant and the keys that belong to it, changed as one commit.

The records the allocator works with, and `Line`: one operation on a line (see `allocation.py` for
the key scheme). Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from execution_stream.domain.commits import Commit, Write
from execution_stream.domain.trace import TRACEPARENT, TRACESTATE, TraceContext

LimitFor = Callable[[str, str], int]
_EMPTY_LINE = {"in_use": 0, "waiting": 0, "head": 0, "tail": 0, "released_head": 0, "released_tail": 0}
# Released ids forgotten per operation: enough to keep the ring bounded, cheap per message.
_FORGET_PER_OPERATION = 4


@dataclass(frozen=True)
class RunnerLine:
    in_use: int
    queued: int
    # Queue indexes: the next to admit, the next to give; between them, released ones leave holes.
    head: int
    tail: int
    version: int


@dataclass(frozen=True)
class Admission:
    tenant_id: str
    execution_id: str
    jit_event_id: str
    runner: str
    trace: TraceContext | None = None


@dataclass(frozen=True)
class Queued:
    tenant_id: str
    execution_id: str
    jit_event_id: str
    runner: str
    index: int


class Outcome(StrEnum):
    ADMITTED = "admitted"
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    NONE = "none"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    # Everything to forward now, in order: those a freed slot or a raised limit admitted, then this one.
    admitted: list[Admission]
    writes: list[Write]
    queued: Queued | None = None
    line: LineView | None = None


@dataclass(frozen=True)
class LineView:
    tenant_id: str
    runner: str
    line: RunnerLine
    oldest_waiting_since: float | None


@dataclass(frozen=True)
class Memory:
    """How long, and how many, released ids are remembered: a replayed request must not take a slot."""

    seconds: float
    count: int


class Line:
    """One operation on a runner line and its keys."""

    def __init__(
        self, table: Mapping[str, Any], tenant: str, runner: str, limit: int, memory: Memory
    ) -> None:
        self.tenant, self.runner = tenant, runner
        self.commit = Commit.open(table, line_key(tenant, runner), _EMPTY_LINE)
        self.limit = limit
        self.memory = memory

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
        return int(self.head["waiting"])

    def grant(
        self, execution_id: str, jit_event_id: str, now: float, trace: TraceContext | None = None
    ) -> Admission:
        holder = {"runner": self.runner, "jit_event_id": jit_event_id, "granted_at": now, "deadline_at": None}
        self.commit.set(holder_key(self.tenant, execution_id), {**holder, **trace_fields(trace)})
        self.head["in_use"] += 1
        return Admission(self.tenant, execution_id, jit_event_id, self.runner, trace)

    def enqueue(
        self, execution_id: str, jit_event_id: str, now: float, trace: TraceContext | None = None
    ) -> Queued:
        index = self.head["tail"]
        reference = {"execution_id": execution_id, "jit_event_id": jit_event_id, "enqueued_at": now}
        reference.update(trace_fields(trace))
        self.commit.set(queue_key(self.tenant, index, self.runner), reference)
        member = {"state": "queued", "runner": self.runner, "index": index}
        self.commit.set(member_key(self.tenant, execution_id), member)
        self.head["tail"] += 1
        self.head["waiting"] += 1
        return Queued(self.tenant, execution_id, jit_event_id, self.runner, index)

    def remove(self, execution_id: str, now: float) -> bool:
        """Out of its slot or its queue, remembered as released; False if it was in neither."""
        held_key, member_at = holder_key(self.tenant, execution_id), member_key(self.tenant, execution_id)
        member = self.get(member_at)
        if self.get(held_key) is not None:
            self.commit.delete(held_key)
            self.head["in_use"] = max(0, self.in_use - 1)
        elif member is not None and member["state"] == "queued":
            self.commit.delete(queue_key(self.tenant, member["index"], self.runner))
            self.head["waiting"] = max(0, self.queued - 1)
            self._skip_removed()
        else:
            return False
        self.commit.set(
            member_at, {"state": "released", "runner": self.runner, "forget_at": now + self.memory.seconds}
        )
        ring = self.head["released_tail"]
        self.commit.set(ring_key(self.tenant, ring, self.runner), execution_id)
        self.head["released_tail"] = ring + 1
        return True

    def admit_waiting(self, now: float) -> list[Admission]:
        admitted = []
        while self.queued > 0 and self.in_use < self.limit and self.head["head"] < self.head["tail"]:
            key = queue_key(self.tenant, self.head["head"], self.runner)
            waiting = self.get(key)
            self.head["head"] += 1
            if waiting is None:
                continue  # released while it waited: its index stays empty
            self.head["waiting"] -= 1
            self.commit.delete(key)
            self.commit.delete(member_key(self.tenant, waiting["execution_id"]))
            admitted.append(
                self.grant(waiting["execution_id"], waiting["jit_event_id"], now, trace_of(waiting))
            )
        if admitted:
            self._skip_removed()
        return admitted

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
        line = RunnerLine(self.in_use, self.queued, self.head["head"], self.head["tail"], self.commit.version)
        oldest = self.get(queue_key(self.tenant, line.head, self.runner)) if line.queued else None
        return LineView(self.tenant, self.runner, line, oldest["enqueued_at"] if oldest else None)

    def result(self, outcome: Outcome, admitted: list[Admission], queued: Queued | None = None) -> Result:
        writes = self.commit.writes()
        view = self._view_after(writes) if writes else None
        return Result(outcome, admitted, writes, queued, view)

    def _view_after(self, writes: list[Write]) -> LineView:
        version = self.commit.version + 1
        line = RunnerLine(self.in_use, self.queued, self.head["head"], self.head["tail"], version)
        return LineView(self.tenant, self.runner, line, None)

    def _skip_removed(self) -> None:
        """Past the empty indexes at the head, so that positions count only those still waiting
        ahead (each index is passed once: constant time per operation on average)."""
        while self.head["head"] < self.head["tail"] and self._hole_at_head():
            self.head["head"] += 1

    def _hole_at_head(self) -> bool:
        return self.get(queue_key(self.tenant, self.head["head"], self.runner)) is None


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


def queue_key(tenant: str, index: int, runner: str) -> str:
    return f"Q#{tenant}#{index}#{runner}"


def member_key(tenant: str, execution_id: str) -> str:
    return f"M#{tenant}#{execution_id}"


def ring_key(tenant: str, n: int, runner: str) -> str:
    return f"R#{tenant}#{n}#{runner}"
