import itertools

import pytest

from execution_stream.domain.lifecycle import (
    TERMINAL_STATUSES,
    allowed_predecessors,
    is_transition_allowed,
)
from execution_stream.domain.models import ExecutionStatus

PENDING = ExecutionStatus.PENDING
DISPATCHED = ExecutionStatus.DISPATCHED
RUNNING = ExecutionStatus.RUNNING
COMPLETED = ExecutionStatus.COMPLETED
FAILED = ExecutionStatus.FAILED
CANCELED = ExecutionStatus.CANCELED

EXPECTED_TRANSITIONS = {
    (PENDING, DISPATCHED),
    (PENDING, CANCELED),
    (PENDING, FAILED),
    (DISPATCHED, RUNNING),
    (DISPATCHED, COMPLETED),
    (DISPATCHED, FAILED),
    (DISPATCHED, CANCELED),
    (RUNNING, COMPLETED),
    (RUNNING, FAILED),
    (RUNNING, CANCELED),
}
ALL_PAIRS = list(itertools.product(ExecutionStatus, repeat=2))


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS)
def test_transition_table(current: ExecutionStatus, new: ExecutionStatus) -> None:
    assert is_transition_allowed(current, new) == ((current, new) in EXPECTED_TRANSITIONS)


def test_terminal_statuses() -> None:
    assert frozenset({COMPLETED, FAILED, CANCELED}) == TERMINAL_STATUSES


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_stays_terminal(terminal: ExecutionStatus) -> None:
    assert not any(is_transition_allowed(terminal, new) for new in ExecutionStatus)


@pytest.mark.parametrize("status", list(ExecutionStatus))
def test_no_self_transition(status: ExecutionStatus) -> None:
    assert not is_transition_allowed(status, status)


@pytest.mark.parametrize("new", list(ExecutionStatus))
def test_allowed_predecessors_match_the_table(new: ExecutionStatus) -> None:
    expected = frozenset(current for current, target in EXPECTED_TRANSITIONS if target == new)
    assert allowed_predecessors(new) == expected


def test_nothing_leads_back_to_pending() -> None:
    assert allowed_predecessors(PENDING) == frozenset()
