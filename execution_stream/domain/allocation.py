"""A tenant's runner capacity at any backlog: who holds a slot, who waits, in arrival order.

State lives in one key-value table (a faust table in the worker, a dict in tests), one small value
per key, so that every operation reads and writes a handful of keys whatever the backlog. Each
tenant and runner has a *line*, the head of a `commits.Commit`, and the keys that belong to it:
- "L#<tenant>#<runner>"          the line: slots in use, the queue's head and tail, released ring
- "H#<tenant>#<execution_id>"    a holder: runner, jit_event_id, granted_at, deadline_at
- "Q#<tenant>#<index>#<runner>"  a queued execution's reference, at its index
- "M#<tenant>#<execution_id>"    where a waiting execution is queued, or that it was released lately
- "R#<tenant>#<n>#<runner>"      the ring of released ids, forgotten by age and count
Every key starts with the tenant, so it stays on the tenant's partition. Operations return the
writes to apply once their effects are sent. A slot is held until its execution is released: no
time reclaims it; the watchdog fails an overdue execution, and its final status releases the slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from execution_stream.domain.commits import VERSION, Commit, Write, resolve

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
class Overdue:
    tenant_id: str
    execution_id: str
    jit_event_id: str
    runner: str
    deadline_at: float


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


class Allocator:
    def __init__(self, table: Mapping[str, Any], limit_for: LimitFor, memory: Memory) -> None:
        self.table = table
        self.limit_for = limit_for
        self.memory = memory

    def request(
        self, tenant: str, execution_id: str, jit_event_id: str, runner: str, *, now: float
    ) -> Result:
        """Admit the execution into a free slot of its runner, or queue it behind those waiting.

        One that holds a slot, waits, or was released lately is a DUPLICATE and changes nothing;
        one that holds a slot is forwarded again (the first forward may be the one a crash lost).
        """
        line = _Line.open(self, tenant, runner)
        held = line.get(_holder_key(tenant, execution_id))
        if held is not None:
            return line.result(Outcome.DUPLICATE, [Admission(tenant, execution_id, jit_event_id, runner)])
        member = line.get(_member_key(tenant, execution_id))
        if member is not None:
            # Said again where it waits: a crash may have lost the first word of it.
            queued = member["state"] == "queued"
            waiting = Queued(tenant, execution_id, jit_event_id, runner, member["index"]) if queued else None
            return line.result(Outcome.DUPLICATE, [], waiting)
        line.forget_released(now)
        admitted = line.admit_waiting(now)
        if line.queued == 0 and line.in_use < line.limit:
            admitted.append(line.grant(execution_id, jit_event_id, now))
            return line.result(Outcome.ADMITTED, admitted)
        queued = line.enqueue(execution_id, jit_event_id, now)
        return line.result(Outcome.QUEUED, admitted, queued)

    def release(self, tenant: str, execution_id: str, runner: str | None, *, now: float) -> Result:
        """Free the execution's slot, or take it out of its queue, and admit whoever waits next.

        An execution neither holding a slot nor queued releases nothing. Without the runner, the
        holder's or queue member's record names it.
        """
        runner = runner or self._runner_of(tenant, execution_id)
        if runner is None:
            return Result(Outcome.NONE, [], [])
        line = _Line.open(self, tenant, runner)
        if not line.remove(execution_id, now):
            return line.result(Outcome.NONE, [])
        line.forget_released(now)
        # Released before admitting, so an execution canceled while queued is never admitted here.
        return line.result(Outcome.NONE, line.admit_waiting(now))

    def refill(self, tenant: str, runner: str, *, now: float) -> Result:
        """Admit into free slots (after a raised limit): a tenant with nothing new needs this."""
        line = _Line.open(self, tenant, runner)
        return line.result(Outcome.NONE, line.admit_waiting(now))

    def set_deadline(self, tenant: str, execution_id: str, runner: str, deadline_at: float) -> Result:
        """The deadline fixed at dispatch; only a holder has one (a late message changes nothing)."""
        line = _Line.open(self, tenant, runner)
        key = _holder_key(tenant, execution_id)
        held = line.get(key)
        if held is not None and held.get("deadline_at") != deadline_at:
            line.commit.set(key, {**held, "deadline_at": deadline_at})
        return line.result(Outcome.NONE, [])

    def overdue(self, now: float, timeout_seconds: float) -> list[Overdue]:
        """Holders past their deadline; one not dispatched yet is timed from its grant, with the
        timeout as it is set now. Longest overdue first."""
        late = []
        for key, record in list(self.table.items()):
            if not key.startswith("H#"):
                continue
            _, tenant, execution_id = key.split("#", 2)
            held = self._resolved_holder(tenant, record)
            if held is None:
                continue
            deadline = held.get("deadline_at")
            if deadline is None:
                deadline = held["granted_at"] + timeout_seconds
            if now > deadline:
                late.append(Overdue(tenant, execution_id, held["jit_event_id"], held["runner"], deadline))
        return sorted(late, key=lambda o: (o.deadline_at, o.tenant_id, o.execution_id))

    def lines(self) -> Iterator[LineView]:
        for key in list(self.table):
            if key.startswith("L#"):
                _, tenant, runner = key.split("#", 2)
                yield _Line.open(self, tenant, runner).view()

    def line(self, tenant: str, runner: str) -> LineView:
        return _Line.open(self, tenant, runner).view()

    def limit(self, tenant: str, runner: str) -> int:
        limit = self.limit_for(tenant, runner)
        if limit < 0:
            raise ValueError(f"the limit of runner {runner!r} must not be negative, not {limit}")
        return limit

    def _runner_of(self, tenant: str, execution_id: str) -> str | None:
        for key in (_holder_key(tenant, execution_id), _member_key(tenant, execution_id)):
            record = self.table.get(key)
            for value in (record["val"], record["prev"]) if record else ():
                if value is not None and value.get("runner"):
                    return str(value["runner"])
        return None

    def _resolved_holder(self, tenant: str, record: Mapping[str, Any]) -> dict[str, Any] | None:
        known = record["val"] or record["prev"]
        if known is None:
            return None
        line = self.table.get(_line_key(tenant, known["runner"]))
        held: dict[str, Any] | None = resolve(record, line[VERSION] if line else 0)
        return held


class _Line:
    """One operation on a runner line and its keys."""

    def __init__(self, allocator: Allocator, tenant: str, runner: str) -> None:
        self.tenant, self.runner = tenant, runner
        self.commit = Commit.open(allocator.table, _line_key(tenant, runner), _EMPTY_LINE)
        self.limit = allocator.limit(tenant, runner)
        self.memory = allocator.memory

    @classmethod
    def open(cls, allocator: Allocator, tenant: str, runner: str) -> _Line:
        return cls(allocator, tenant, runner)

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

    def grant(self, execution_id: str, jit_event_id: str, now: float) -> Admission:
        holder = {"runner": self.runner, "jit_event_id": jit_event_id, "granted_at": now, "deadline_at": None}
        self.commit.set(_holder_key(self.tenant, execution_id), holder)
        self.head["in_use"] += 1
        return Admission(self.tenant, execution_id, jit_event_id, self.runner)

    def enqueue(self, execution_id: str, jit_event_id: str, now: float) -> Queued:
        index = self.head["tail"]
        reference = {"execution_id": execution_id, "jit_event_id": jit_event_id, "enqueued_at": now}
        self.commit.set(_queue_key(self.tenant, index, self.runner), reference)
        member = {"state": "queued", "runner": self.runner, "index": index}
        self.commit.set(_member_key(self.tenant, execution_id), member)
        self.head["tail"] += 1
        self.head["waiting"] += 1
        return Queued(self.tenant, execution_id, jit_event_id, self.runner, index)

    def remove(self, execution_id: str, now: float) -> bool:
        """Out of its slot or its queue, remembered as released; False if it was in neither."""
        holder_key, member_key = (
            _holder_key(self.tenant, execution_id),
            _member_key(self.tenant, execution_id),
        )
        member = self.get(member_key)
        if self.get(holder_key) is not None:
            self.commit.delete(holder_key)
            self.head["in_use"] = max(0, self.in_use - 1)
        elif member is not None and member["state"] == "queued":
            self.commit.delete(_queue_key(self.tenant, member["index"], self.runner))
            self.head["waiting"] = max(0, self.queued - 1)
            self._skip_removed()
        else:
            return False
        self.commit.set(
            member_key, {"state": "released", "runner": self.runner, "forget_at": now + self.memory.seconds}
        )
        ring = self.head["released_tail"]
        self.commit.set(_ring_key(self.tenant, ring, self.runner), execution_id)
        self.head["released_tail"] = ring + 1
        return True

    def admit_waiting(self, now: float) -> list[Admission]:
        admitted = []
        while self.queued > 0 and self.in_use < self.limit and self.head["head"] < self.head["tail"]:
            key = _queue_key(self.tenant, self.head["head"], self.runner)
            waiting = self.get(key)
            self.head["head"] += 1
            if waiting is None:
                continue  # released while it waited: its index stays empty
            self.head["waiting"] -= 1
            self.commit.delete(key)
            self.commit.delete(_member_key(self.tenant, waiting["execution_id"]))
            admitted.append(self.grant(waiting["execution_id"], waiting["jit_event_id"], now))
        if admitted:
            self._skip_removed()
        return admitted

    def forget_released(self, now: float) -> None:
        head, tail = self.head["released_head"], self.head["released_tail"]
        for _ in range(_FORGET_PER_OPERATION):
            if head >= tail:
                break
            ring_key = _ring_key(self.tenant, head, self.runner)
            execution_id = self.get(ring_key)
            member_key = _member_key(self.tenant, execution_id) if execution_id else ""
            member = self.get(member_key) if member_key else None
            if member is not None and member["state"] == "released":
                if tail - head <= self.memory.count and member["forget_at"] > now:
                    break
                self.commit.delete(member_key)
            self.commit.delete(ring_key)
            head += 1
        self.head["released_head"] = head

    def view(self) -> LineView:
        line = RunnerLine(self.in_use, self.queued, self.head["head"], self.head["tail"], self.commit.version)
        oldest = self.get(_queue_key(self.tenant, line.head, self.runner)) if line.queued else None
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
        return self.get(_queue_key(self.tenant, self.head["head"], self.runner)) is None


def _line_key(tenant: str, runner: str) -> str:
    return f"L#{tenant}#{runner}"


def _holder_key(tenant: str, execution_id: str) -> str:
    return f"H#{tenant}#{execution_id}"


def _queue_key(tenant: str, index: int, runner: str) -> str:
    return f"Q#{tenant}#{index}#{runner}"


def _member_key(tenant: str, execution_id: str) -> str:
    return f"M#{tenant}#{execution_id}"


def _ring_key(tenant: str, n: int, runner: str) -> str:
    return f"R#{tenant}#{n}#{runner}"
