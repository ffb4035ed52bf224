import json
import math
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from execution_stream.domain.allocation import (
    Admission,
    HeldSlot,
    LeaseWindows,
    Outcome,
    Payload,
    TenantAllocation,
    expire,
    holders_past,
    holds,
    in_use,
    is_empty,
    oldest_queued_at,
    queued,
    release,
    request,
)

WINDOWS = LeaseWindows(size_seconds=60, expires_seconds=60)
GITHUB = "github_actions"
JIT = "jit"
T0 = 28_333_333 * 60.0  # late 2023, on a window boundary


def limit_of(limit: int) -> Callable[[str], int]:
    return lambda _runner: limit


def payload_of(execution_id: str) -> Payload:
    return {"execution_id": execution_id, "steps": [{"name": "scan", "params": {"depth": 1.5}}], "x": None}


def round_trip(state: TenantAllocation) -> TenantAllocation:
    restored = TenantAllocation.from_json(json.loads(json.dumps(state.to_json())))
    assert restored == state
    assert restored.to_json() == state.to_json()
    return restored


def ask(
    state: TenantAllocation, execution_id: str, now: float, limit: int = 2, runner: str = GITHUB
) -> tuple[TenantAllocation, Outcome, list[str]]:
    state, decision = request(
        state, execution_id, runner, payload_of(execution_id), now=now, limit_for=limit_of(limit)
    )
    for admission in decision.admitted:
        assert admission.payload == payload_of(admission.execution_id)
    return round_trip(state), decision.outcome, [admission.execution_id for admission in decision.admitted]


def free(
    state: TenantAllocation, execution_id: str, now: float, limit: int = 2, runner: str = GITHUB
) -> tuple[TenantAllocation, list[str]]:
    state, admitted = release(state, execution_id, runner, now=now, limit_for=limit_of(limit))
    return round_trip(state), [admission.execution_id for admission in admitted]


def fresh() -> TenantAllocation:
    return TenantAllocation(windows=WINDOWS)


def five_requests() -> TenantAllocation:
    state = fresh()
    for offset, execution_id in enumerate("abcde"):
        state, _, _ = ask(state, execution_id, T0 + offset)
    return state


def test_at_the_limit_the_rest_queue_in_arrival_order() -> None:
    state = fresh()
    outcomes = []
    for offset, execution_id in enumerate("abcde"):
        state, outcome, admitted = ask(state, execution_id, T0 + offset)
        outcomes.append((outcome, admitted))
    assert outcomes == [
        (Outcome.ADMITTED, ["a"]),
        (Outcome.ADMITTED, ["b"]),
        (Outcome.QUEUED, []),
        (Outcome.QUEUED, []),
        (Outcome.QUEUED, []),
    ]
    assert in_use(state, GITHUB) == 2
    assert queued(state, GITHUB) == ["c", "d", "e"]
    assert oldest_queued_at(state) == T0 + 2


def test_admitted_payload_is_the_one_requested() -> None:
    _, decision = request(fresh(), "a", GITHUB, payload_of("a"), now=T0, limit_for=limit_of(1))
    assert decision.admitted == [Admission("a", GITHUB, payload_of("a"))]


def test_release_admits_the_oldest_waiting() -> None:
    state, admitted = free(five_requests(), "a", T0 + 10)
    assert admitted == ["c"]
    assert in_use(state, GITHUB) == 2
    assert queued(state, GITHUB) == ["d", "e"]


def test_releasing_twice_admits_once() -> None:
    state, first = free(five_requests(), "a", T0 + 10)
    state, second = free(state, "a", T0 + 11)
    assert (first, second) == (["c"], [])
    assert in_use(state, GITHUB) == 2
    assert queued(state, GITHUB) == ["d", "e"]


def test_releasing_an_unknown_execution_changes_nothing() -> None:
    state = five_requests()
    assert free(state, "zzz", T0 + 10) == (state, [])
    assert free(state, "a", T0 + 10, runner=JIT) == (state, [])


@pytest.mark.parametrize("execution_id", ["a", "d"], ids=["holding", "queued"])
def test_a_replayed_request_is_a_duplicate_and_changes_nothing(execution_id: str) -> None:
    state = five_requests()
    replayed, outcome, admitted = ask(state, execution_id, T0 + 10)
    assert (outcome, admitted) == (Outcome.DUPLICATE, [])
    assert replayed == state


def test_a_duplicate_under_another_runner_takes_no_slot() -> None:
    state, _, _ = ask(fresh(), "a", T0)
    state, outcome, _ = ask(state, "a", T0 + 1, runner=JIT)
    assert outcome == Outcome.DUPLICATE
    assert (in_use(state, GITHUB), in_use(state, JIT)) == (1, 0)


def test_a_request_replayed_after_its_release_takes_no_slot_until_forgotten() -> None:
    state, _, _ = ask(fresh(), "a", T0, limit=1)
    state, _ = free(state, "a", T0 + 5, limit=1)
    state, outcome, _ = ask(state, "a", T0 + 6, limit=1)
    assert outcome == Outcome.DUPLICATE
    assert in_use(state, GITHUB) == 0
    # Released in the window starting at T0: remembered until that window expires.
    state, outcome, _ = ask(state, "a", T0 + 119.5, limit=1)
    assert outcome == Outcome.DUPLICATE
    state, outcome, _ = ask(state, "a", T0 + 120, limit=1)
    assert outcome == Outcome.ADMITTED


def test_two_runners_have_independent_limits() -> None:
    limit_for = {GITHUB: 1, JIT: 2}.__getitem__
    state = fresh()
    outcomes = []
    for offset, (execution_id, runner) in enumerate(
        [("g1", GITHUB), ("g2", GITHUB), ("j1", JIT), ("j2", JIT)]
    ):
        state, decision = request(state, execution_id, runner, {}, now=T0 + offset, limit_for=limit_for)
        outcomes.append(decision.outcome)
    assert outcomes == [Outcome.ADMITTED, Outcome.QUEUED, Outcome.ADMITTED, Outcome.ADMITTED]
    assert (in_use(state, GITHUB), in_use(state, JIT)) == (1, 2)
    state, admitted = release(state, "j1", JIT, now=T0 + 10, limit_for=limit_for)
    assert admitted == []
    assert queued(state, GITHUB) == ["g2"]


def test_releasing_a_queued_execution_dequeues_it_without_freeing_a_slot() -> None:
    state, admitted = free(five_requests(), "d", T0 + 10)
    assert admitted == []
    assert in_use(state, GITHUB) == 2
    assert queued(state, GITHUB) == ["c", "e"]
    state, admitted = free(state, "a", T0 + 11)
    assert admitted == ["c"]


def test_window_expiry_reclaims_slots_and_admits_the_waiting() -> None:
    state, _, _ = ask(fresh(), "a", T0 + 10, limit=1)
    state, _, _ = ask(state, "b", T0 + 20, limit=1)
    # "a" was granted in the window [T0, T0 + 60), which expires 60 s after its end.
    state, outcome, admitted = ask(state, "c", T0 + 119.9, limit=1)
    assert (outcome, admitted) == (Outcome.QUEUED, [])
    state, outcome, admitted = ask(state, "d", T0 + 120, limit=1)
    assert (outcome, admitted) == (Outcome.QUEUED, ["b"])
    assert queued(state, GITHUB) == ["c", "d"]
    assert holders_past(state, T0 + 120, 0) == []
    assert in_use(state, GITHUB) == 1


def test_expire_alone_admits_into_reclaimed_slots() -> None:
    state, _, _ = ask(fresh(), "a", T0, limit=1)
    state, _, _ = ask(state, "b", T0 + 1, limit=1)
    state, admitted = expire(state, now=T0 + 120, limit_for=limit_of(1))
    assert [admission.execution_id for admission in admitted] == ["b"]
    assert in_use(state, GITHUB) == 1


def test_a_release_after_its_window_expired_changes_no_count() -> None:
    state, _, _ = ask(fresh(), "a", T0 + 10)
    state, _, _ = ask(state, "b", T0 + 70)
    state, _, _ = ask(state, "c", T0 + 71)
    state, admitted = free(state, "a", T0 + 125)
    assert admitted == ["c"]  # freed by expiry, not by the release
    assert in_use(state, GITHUB) == 2
    state, admitted = free(state, "a", T0 + 126)
    assert admitted == []
    assert in_use(state, GITHUB) == 2


def test_any_release_reclaims_expired_slots_first() -> None:
    state, _, _ = ask(fresh(), "a", T0 + 10)
    state, _, _ = ask(state, "b", T0 + 70)
    state, _, _ = ask(state, "c", T0 + 71)
    state, _, _ = ask(state, "d", T0 + 72)
    state, admitted = free(state, "b", T0 + 120)
    assert admitted == ["c", "d"]
    assert holders_past(state, T0 + 120, -1) == [
        HeldSlot("c", GITHUB, T0 + 120, {}),
        HeldSlot("d", GITHUB, T0 + 120, {}),
    ]


def test_an_execution_canceled_while_queued_is_not_admitted_by_the_expiry_of_its_release() -> None:
    state, _, _ = ask(fresh(), "a", T0, limit=1)
    state, _, _ = ask(state, "b", T0 + 1, limit=1)
    state, _, _ = ask(state, "c", T0 + 2, limit=1)
    state, admitted = free(state, "b", T0 + 120, limit=1)
    assert admitted == ["c"]
    assert (in_use(state, GITHUB), queued(state, GITHUB)) == (1, [])


def test_a_grant_is_counted_in_the_window_it_was_granted_in() -> None:
    state, _, _ = ask(fresh(), "early", T0 + 59.9)
    state, _, _ = ask(state, "late", T0 + 60)
    state, _, _ = ask(state, "probe", T0 + 119.99, limit=3)
    assert in_use(state, GITHUB) == 3
    state, _, _ = ask(state, "probe2", T0 + 120, limit=3)
    assert holders_past(state, T0 + 120, -1) == [
        HeldSlot("late", GITHUB, T0 + 60, {}),
        HeldSlot("probe", GITHUB, T0 + 119.99, {}),
        HeldSlot("probe2", GITHUB, T0 + 120, {}),
    ]


def test_a_lowered_limit_evicts_no_one_and_admits_once_below_it() -> None:
    state = fresh()
    for offset, execution_id in enumerate("abcd"):
        state, _, _ = ask(state, execution_id, T0 + offset, limit=3)
    assert queued(state, GITHUB) == ["d"]
    state, outcome, _ = ask(state, "e", T0 + 5, limit=1)
    assert (outcome, in_use(state, GITHUB)) == (Outcome.QUEUED, 3)
    state, admitted = free(state, "a", T0 + 6, limit=1)
    assert (admitted, in_use(state, GITHUB)) == ([], 2)
    state, admitted = free(state, "b", T0 + 7, limit=1)
    assert (admitted, in_use(state, GITHUB)) == ([], 1)
    state, admitted = free(state, "c", T0 + 8, limit=1)
    assert (admitted, queued(state, GITHUB)) == (["d"], ["e"])


def test_a_raised_limit_admits_the_waiting_on_the_next_operation() -> None:
    state, _, _ = ask(fresh(), "a", T0, limit=1)
    state, _, _ = ask(state, "b", T0 + 1, limit=1)
    state, outcome, admitted = ask(state, "c", T0 + 2, limit=2)
    assert (outcome, admitted) == (Outcome.QUEUED, ["b"])
    state, outcome, admitted = ask(state, "d", T0 + 3, limit=4)
    assert (outcome, admitted) == (Outcome.ADMITTED, ["c", "d"])


def test_a_zero_limit_queues_everything() -> None:
    state, outcome, _ = ask(fresh(), "a", T0, limit=0)
    assert (outcome, in_use(state, GITHUB), queued(state, GITHUB)) == (Outcome.QUEUED, 0, ["a"])


def test_holders_past_lists_those_held_longer_than_the_timeout() -> None:
    state, _, _ = ask(fresh(), "b", T0 + 50)
    state, _, _ = ask(state, "a", T0, runner=JIT)
    state, _, _ = ask(state, "c", T0 + 60)
    assert holders_past(state, T0 + 110, 60) == [HeldSlot("a", JIT, T0, {})]
    assert holders_past(state, T0 + 110.5, 60) == [
        HeldSlot("a", JIT, T0, {}),
        HeldSlot("b", GITHUB, T0 + 50, {}),
    ]
    assert holders_past(state, T0 + 30, 60) == []


def test_oldest_queued_at_spans_runners() -> None:
    state = fresh()
    assert oldest_queued_at(state) is None
    state, _, _ = ask(state, "g", T0 + 5, limit=0)
    state, _, _ = ask(state, "j", T0 + 3, limit=0, runner=JIT)
    assert oldest_queued_at(state) == T0 + 3


def test_is_empty_once_nothing_is_held_queued_or_remembered() -> None:
    state = fresh()
    assert is_empty(state)
    state, _, _ = ask(state, "a", T0)
    assert not is_empty(state)
    state, _ = free(state, "a", T0 + 1)
    assert not is_empty(state)
    state, _ = expire(state, now=T0 + 120, limit_for=limit_of(2))
    assert is_empty(state)
    assert state == fresh()


def test_is_empty_after_an_unreported_holder_expires_and_is_forgotten() -> None:
    state, _, _ = ask(fresh(), "a", T0)
    state, _ = expire(state, now=T0 + 120, limit_for=limit_of(2))
    assert (in_use(state, GITHUB), is_empty(state)) == (0, False)
    state, _ = expire(state, now=T0 + 240, limit_for=limit_of(2))
    assert is_empty(state)


def test_json_holds_only_json_types() -> None:
    state = five_requests()
    assert json.loads(json.dumps(state.to_json())) == state.to_json()


def test_a_payload_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValidationError):
        request(fresh(), "a", GITHUB, {"when": (1, 2)}, now=T0, limit_for=limit_of(1))  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("size", "expires"), [(60, 59.9), (0, 60), (-1, 60), (math.inf, math.inf), (60, math.nan)]
)
def test_windows_must_be_finite_and_expire_no_sooner_than_their_size(size: float, expires: float) -> None:
    with pytest.raises(ValidationError):
        LeaseWindows(size_seconds=size, expires_seconds=expires)


def test_windows_may_expire_exactly_at_their_size() -> None:
    assert LeaseWindows(size_seconds=60, expires_seconds=60).expiry_of(T0) == T0 + 120


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_time_must_be_finite(now: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        request(fresh(), "a", GITHUB, {}, now=now, limit_for=limit_of(1))


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        request(fresh(), "a", GITHUB, {}, now=T0, limit_for=limit_of(-1))


def test_a_holder_keeps_its_reference_from_request_through_the_queue() -> None:
    windows = LeaseWindows(size_seconds=60, expires_seconds=600)
    state = TenantAllocation(windows=windows)
    for number in range(2):
        state, _decision = request(
            state,
            f"x{number}",
            GITHUB,
            {"n": number},
            now=T0,
            limit_for=lambda runner: 1,
            reference={"jit_event_id": f"event-{number}"},
        )
    state, admitted = release(state, "x0", GITHUB, now=T0 + 1, limit_for=lambda runner: 1)

    assert [a.execution_id for a in admitted] == ["x1"]
    assert holds(state, "x1")
    assert not holds(state, "x0")
    assert holders_past(state, T0 + 100, 10) == [HeldSlot("x1", GITHUB, T0 + 1, {"jit_event_id": "event-1"})]
