"""Random requests, releases, time and limit changes against an observer that sees only the outputs."""

import json
import math
from dataclasses import dataclass, field
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from execution_stream.domain.allocation import (
    Admission,
    LeaseWindows,
    Outcome,
    TenantAllocation,
    expire,
    in_use,
    queued,
    release,
    request,
)

RUNNERS = ("github_actions", "jit")
EXECUTIONS = tuple(f"e{number}" for number in range(6))
RUNNER_OF = {execution_id: RUNNERS[number % 2] for number, execution_id in enumerate(EXECUTIONS)}
START = 28_333_333 * 60.0


class Request(NamedTuple):
    execution_id: str


class Release(NamedTuple):
    execution_id: str


class Advance(NamedTuple):
    seconds: float


class Expire(NamedTuple):
    pass


class SetLimit(NamedTuple):
    runner: str
    limit: int


Operation = Request | Release | Advance | Expire | SetLimit

operations = st.lists(
    st.one_of(
        st.builds(Request, st.sampled_from(EXECUTIONS)),
        st.builds(Release, st.sampled_from(EXECUTIONS)),
        st.builds(Advance, st.integers(0, 150).map(float) | st.floats(0, 150)),
        st.builds(Expire),
        st.builds(SetLimit, st.sampled_from(RUNNERS), st.integers(0, 3)),
    ),
    max_size=80,
)
lease_windows = st.sampled_from([(60.0, 60.0), (60.0, 90.0), (30.0, 200.0), (0.7, 0.7)]).map(
    lambda sizes: LeaseWindows(size_seconds=sizes[0], expires_seconds=sizes[1])
)


@dataclass
class Observer:
    """What the caller can know from the decisions alone: who holds a slot until when, who waits."""

    windows: LeaseWindows
    held_until: dict[str, float] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    requested: set[str] = field(default_factory=set)

    def expire(self, now: float) -> None:
        self.held_until = {execution_id: at for execution_id, at in self.held_until.items() if at > now}

    def admit(self, admission: Admission, now: float, requested_id: str | None) -> None:
        execution_id = admission.execution_id
        assert execution_id not in self.held_until, "admitted again while holding a slot"
        assert admission.runner == RUNNER_OF[execution_id]
        if execution_id != requested_id:
            waiting_here = [waiting for waiting in self.waiting if RUNNER_OF[waiting] == admission.runner]
            assert waiting_here[:1] == [execution_id], "admitted out of arrival order"
            self.waiting.remove(execution_id)
        self.held_until[execution_id] = self.windows.expiry_of(self.windows.start_of(now))

    def queued_for(self, runner: str) -> list[str]:
        return [execution_id for execution_id in self.waiting if RUNNER_OF[execution_id] == runner]

    def held_by(self, runner: str) -> set[str]:
        return {execution_id for execution_id in self.held_until if RUNNER_OF[execution_id] == runner}


def apply_request(
    state: TenantAllocation, observer: Observer, execution_id: str, now: float, limits: dict[str, int]
) -> TenantAllocation:
    already_here = execution_id in observer.held_until or execution_id in observer.waiting
    new = execution_id not in observer.requested
    state, decision = request(
        state,
        execution_id,
        RUNNER_OF[execution_id],
        {"id": execution_id},
        now=now,
        limit_for=limits.__getitem__,
    )
    observer.requested.add(execution_id)
    observer.expire(now)
    if already_here:
        assert decision.outcome == Outcome.DUPLICATE, "a replayed request took a second place"
    if new:
        assert decision.outcome != Outcome.DUPLICATE
    for admission in decision.admitted:
        assert admission.payload == {"id": admission.execution_id}
        mine = decision.outcome == Outcome.ADMITTED and admission is decision.admitted[-1]
        observer.admit(admission, now, execution_id if mine else None)
    if decision.outcome == Outcome.QUEUED:
        observer.waiting.append(execution_id)
    return state


def apply_release(
    state: TenantAllocation, observer: Observer, execution_id: str, now: float, limits: dict[str, int]
) -> TenantAllocation:
    state, admitted = release(
        state, execution_id, RUNNER_OF[execution_id], now=now, limit_for=limits.__getitem__
    )
    observer.expire(now)
    observer.held_until.pop(execution_id, None)
    if execution_id in observer.waiting:
        observer.waiting.remove(execution_id)
    for admission in admitted:
        observer.admit(admission, now, requested_id=None)
    return state


def held_ids(state: TenantAllocation, runner: str) -> set[str]:
    slots = state.runners.get(runner)
    return set(slots.holders) if slots else set()


def check(
    state: TenantAllocation, observer: Observer, before: dict[str, int], limits: dict[str, int]
) -> None:
    assert TenantAllocation.from_json(json.loads(json.dumps(state.to_json()))) == state
    for runner in RUNNERS:
        count = in_use(state, runner)
        assert count >= 0
        assert count == len(observer.held_by(runner))
        assert held_ids(state, runner) == observer.held_by(runner)
        assert queued(state, runner) == observer.queued_for(runner), "queue order is not arrival order"
        if count > before[runner]:
            assert count <= limits[runner], "admitted past the limit"
        if queued(state, runner):
            assert count >= limits[runner], "a slot is free while executions wait"
    held = [execution_id for slots in state.runners.values() for execution_id in slots.holders]
    waiting = [waiting.execution_id for slots in state.runners.values() for waiting in slots.queue]
    remembered = list(state.released)
    assert len(set(held + waiting + remembered)) == len(held) + len(waiting) + len(remembered)
    assert set(held + waiting + remembered) <= observer.requested


@settings(max_examples=300, deadline=None)
@given(windows=lease_windows, script=operations)
def test_random_scripts_keep_every_invariant(windows: LeaseWindows, script: list[Operation]) -> None:
    state = TenantAllocation(windows=windows)
    observer = Observer(windows)
    limits = dict.fromkeys(RUNNERS, 2)
    now = START
    for operation in script:
        before = {runner: in_use(state, runner) for runner in RUNNERS}
        match operation:
            case Request(execution_id):
                state = apply_request(state, observer, execution_id, now, limits)
            case Release(execution_id):
                state = apply_release(state, observer, execution_id, now, limits)
            case Advance(seconds):
                now += seconds
                continue
            case Expire():
                state, admitted = expire(state, now=now, limit_for=limits.__getitem__)
                observer.expire(now)
                for admission in admitted:
                    observer.admit(admission, now, requested_id=None)
            case SetLimit(runner, limit):
                limits[runner] = limit
                continue
        check(state, observer, before, limits)


@given(
    moment=st.floats(0, 4e9, allow_nan=False),
    size=st.sampled_from([0.7, 1.0, 30.0, 60.0, 3600.0]) | st.floats(0.001, 1e5),
)
def test_a_moment_falls_in_the_window_that_starts_at_or_before_it(moment: float, size: float) -> None:
    windows = LeaseWindows(size_seconds=size, expires_seconds=size)
    start = windows.start_of(moment)
    assert start <= moment
    # start * size is rounded to the precision of `moment`: allow those few units in the last place.
    assert moment - start < size + 4 * math.ulp(moment)
