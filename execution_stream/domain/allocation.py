"""A tenant's runner capacity: who holds a slot, who waits for one, and leases that expire in windows.

The allocate agent keeps one `TenantAllocation` per tenant in a table, passes the time in, and forwards
the admitted executions. Everything here is pure: no clock, no I/O, and every operation returns a new
state. Any operation first expires old leases and admits waiting executions into the slots it frees.
"""

import math
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

Payload = dict[str, JsonValue]
LimitFor = Callable[[str], int]


class LeaseWindows(BaseModel):
    """Tumbling windows: a slot counts in the window it was granted in, and that window takes its
    holders with it when it expires `expires_seconds` after its end."""

    model_config = ConfigDict(frozen=True)

    size_seconds: float = Field(gt=0, allow_inf_nan=False)
    expires_seconds: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _expires_covers_a_window(self) -> Self:
        # A tumbling window expiring sooner than its size misbehaves (faust-streaming#118).
        if self.expires_seconds < self.size_seconds:
            raise ValueError("expires_seconds must be at least size_seconds")
        return self

    def start_of(self, moment: float) -> float:
        # Floor division, not floor(moment / size): the quotient can round up to the next window.
        return moment // self.size_seconds * self.size_seconds

    def expiry_of(self, window_start: float) -> float:
        return window_start + self.size_seconds + self.expires_seconds


class Holder(BaseModel):
    model_config = ConfigDict(frozen=True)

    granted_at: float
    window_start: float
    # What the caller needs to act on a holder alone (the watchdog: the execution's full key).
    reference: dict[str, str] = Field(default_factory=dict)


class QueuedExecution(BaseModel):
    model_config = ConfigDict(frozen=True)

    execution_id: str
    enqueued_at: float
    payload: Payload
    reference: dict[str, str] = Field(default_factory=dict)


class RunnerSlots(BaseModel):
    """One runner's holders (by execution_id) and its queue, oldest first."""

    model_config = ConfigDict(frozen=True)

    holders: dict[str, Holder] = Field(default_factory=dict)
    queue: tuple[QueuedExecution, ...] = ()


class TenantAllocation(BaseModel):
    """One tenant's allocation state; treat it as immutable."""

    model_config = ConfigDict(frozen=True)

    windows: LeaseWindows
    runners: dict[str, RunnerSlots] = Field(default_factory=dict)
    # execution_id -> when it is forgotten: a request replayed after its release must not take a slot.
    released: dict[str, float] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls.model_validate(data)


class Outcome(StrEnum):
    ADMITTED = "admitted"
    QUEUED = "queued"
    DUPLICATE = "duplicate"


class Admission(NamedTuple):
    execution_id: str
    runner: str
    payload: Payload


class Decision(NamedTuple):
    outcome: Outcome
    # Everything to forward now, in order: executions that slots freed by expiry admitted, then this one.
    admitted: list[Admission]


class HeldSlot(NamedTuple):
    execution_id: str
    runner: str
    granted_at: float
    reference: dict[str, str]


def request(
    state: TenantAllocation,
    execution_id: str,
    runner: str,
    payload: Payload,
    *,
    now: float,
    limit_for: LimitFor,
    reference: Mapping[str, str] | None = None,
) -> tuple[TenantAllocation, Decision]:
    """Admit the execution into a free slot of its runner, or queue it behind those already waiting.

    An execution that holds a slot, waits, or was released lately is a DUPLICATE and changes nothing.
    """
    state, admitted = expire(state, now=now, limit_for=limit_for)
    if _is_known(state, execution_id):
        return state, Decision(Outcome.DUPLICATE, admitted)
    waiting = QueuedExecution(
        execution_id=execution_id, enqueued_at=now, payload=payload, reference=dict(reference or {})
    )
    slots = state.runners.get(runner, RunnerSlots())
    # After expire() a runner with a queue has no free slot, so arrival order is kept.
    if not slots.queue and len(slots.holders) < _limit(limit_for, runner):
        holders = {**slots.holders, execution_id: _grant(state.windows, now, waiting.reference)}
        state = _with_runner(state, runner, RunnerSlots(holders=holders, queue=slots.queue))
        admission = Admission(execution_id, runner, waiting.payload)
        return state, Decision(Outcome.ADMITTED, [*admitted, admission])
    state = _with_runner(state, runner, RunnerSlots(holders=slots.holders, queue=(*slots.queue, waiting)))
    return state, Decision(Outcome.QUEUED, admitted)


def release(
    state: TenantAllocation,
    execution_id: str,
    runner: str,
    *,
    now: float,
    limit_for: LimitFor,
) -> tuple[TenantAllocation, list[Admission]]:
    """Free the execution's slot, or take it out of the queue, and admit whoever waits next.

    An execution neither holding a slot nor queued under `runner` releases nothing.
    """
    _require_finite(now)
    state = _drop_expired(state, now)
    slots = state.runners.get(runner)
    if slots is not None:
        holders = {held_id: held for held_id, held in slots.holders.items() if held_id != execution_id}
        queue = tuple(waiting for waiting in slots.queue if waiting.execution_id != execution_id)
        if len(holders) < len(slots.holders) or len(queue) < len(slots.queue):
            state = _with_runner(state, runner, RunnerSlots(holders=holders, queue=queue))
            state = _remember_released(state, [execution_id], now)
    # Released before admitting, so an execution canceled while queued is never admitted by this call.
    return _admit_all_waiting(state, now, limit_for)


def expire(
    state: TenantAllocation, *, now: float, limit_for: LimitFor
) -> tuple[TenantAllocation, list[Admission]]:
    """Drop the holders of expired windows, then fill every free slot from its runner's queue.

    Filling also admits after a raised limit. `request` and `release` do this too, so an idle tenant
    needs it only to reclaim leases before its next request or release.
    """
    _require_finite(now)
    return _admit_all_waiting(_drop_expired(state, now), now, limit_for)


def in_use(state: TenantAllocation, runner: str) -> int:
    slots = state.runners.get(runner)
    return len(slots.holders) if slots else 0


def queued(state: TenantAllocation, runner: str) -> list[str]:
    slots = state.runners.get(runner)
    return [waiting.execution_id for waiting in slots.queue] if slots else []


def oldest_queued_at(state: TenantAllocation) -> float | None:
    heads = [slots.queue[0].enqueued_at for slots in state.runners.values() if slots.queue]
    return min(heads, default=None)


def holders_past(state: TenantAllocation, now: float, timeout_seconds: float) -> list[HeldSlot]:
    """The holders granted more than `timeout_seconds` before `now`, longest-held first."""
    overdue = [
        HeldSlot(execution_id, runner, held.granted_at, held.reference)
        for runner, slots in state.runners.items()
        for execution_id, held in slots.holders.items()
        if now - held.granted_at > timeout_seconds
    ]
    return sorted(overdue, key=lambda slot: (slot.granted_at, slot.runner, slot.execution_id))


def holds(state: TenantAllocation, execution_id: str) -> bool:
    return any(execution_id in slots.holders for slots in state.runners.values())


def is_empty(state: TenantAllocation) -> bool:
    """Nothing held, queued or remembered: the agent may delete the tenant's key."""
    return not state.runners and not state.released


def _require_finite(now: float) -> None:
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite number of seconds, not {now}")


def _admit_all_waiting(
    state: TenantAllocation, now: float, limit_for: LimitFor
) -> tuple[TenantAllocation, list[Admission]]:
    admitted: list[Admission] = []
    for runner in list(state.runners):
        state, admitted_here = _admit_waiting(state, runner, now, limit_for)
        admitted.extend(admitted_here)
    return state, admitted


def _is_known(state: TenantAllocation, execution_id: str) -> bool:
    return execution_id in state.released or any(
        execution_id in slots.holders or any(waiting.execution_id == execution_id for waiting in slots.queue)
        for slots in state.runners.values()
    )


def _limit(limit_for: LimitFor, runner: str) -> int:
    limit = limit_for(runner)
    if limit < 0:
        raise ValueError(f"the limit of runner {runner!r} must not be negative, not {limit}")
    return limit


def _grant(windows: LeaseWindows, now: float, reference: dict[str, str]) -> Holder:
    return Holder(granted_at=now, window_start=windows.start_of(now), reference=reference)


def _with_runner(state: TenantAllocation, runner: str, slots: RunnerSlots) -> TenantAllocation:
    runners = dict(state.runners)
    if slots.holders or slots.queue:
        runners[runner] = slots
    else:
        runners.pop(runner, None)
    return state.model_copy(update={"runners": runners})


def _remember_released(state: TenantAllocation, execution_ids: Iterable[str], now: float) -> TenantAllocation:
    forget_at = state.windows.expiry_of(state.windows.start_of(now))
    released = {**state.released, **dict.fromkeys(execution_ids, forget_at)}
    return state.model_copy(update={"released": released})


def _drop_expired(state: TenantAllocation, now: float) -> TenantAllocation:
    windows = state.windows
    runners: dict[str, RunnerSlots] = {}
    expired_ids: list[str] = []
    for runner, slots in state.runners.items():
        live = {
            execution_id: held
            for execution_id, held in slots.holders.items()
            if windows.expiry_of(held.window_start) > now
        }
        expired_ids.extend(execution_id for execution_id in slots.holders if execution_id not in live)
        if live or slots.queue:
            runners[runner] = RunnerSlots(holders=live, queue=slots.queue)
    remembered = {execution_id: at for execution_id, at in state.released.items() if at > now}
    if not expired_ids and len(remembered) == len(state.released):
        return state
    state = state.model_copy(update={"runners": runners, "released": remembered})
    return _remember_released(state, expired_ids, now)


def _admit_waiting(
    state: TenantAllocation, runner: str, now: float, limit_for: LimitFor
) -> tuple[TenantAllocation, list[Admission]]:
    slots = state.runners.get(runner)
    if slots is None or not slots.queue:
        return state, []
    free = _limit(limit_for, runner) - len(slots.holders)
    if free <= 0:
        return state, []
    admitted, still_waiting = slots.queue[:free], slots.queue[free:]
    holders = {
        **slots.holders,
        **{waiting.execution_id: _grant(state.windows, now, waiting.reference) for waiting in admitted},
    }
    state = _with_runner(state, runner, RunnerSlots(holders=holders, queue=still_waiting))
    return state, [Admission(waiting.execution_id, runner, waiting.payload) for waiting in admitted]
