"""Why a pending execution waits and its queue position: the pure rule, case by case."""

from __future__ import annotations

import pytest

from execution_stream.domain.executions import apply_status
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.waiting import (
    NOT_WAITING,
    Waiting,
    WaitingReason,
    runners_to_look_up,
    waiting_of,
)
from tests.support.factories import BASE_TIME, execution
from tests.support.factories import queue_snapshot as snapshot

S = ExecutionStatus


def queued(index: int, runner: str = "github_actions", number: int = 0) -> Execution:
    return execution("tenant-a", number).model_copy(update={"queue_index": index, "job_runner": runner})


def waiting_for_asset(number: int = 0) -> Execution:
    return execution("tenant-a", number).model_copy(update={"waiting_for_asset": f"asset-{number}"})


@pytest.mark.parametrize(("index", "head", "position"), [(7, 7, 1), (9, 7, 3), (1000, 0, 1001), (0, 0, 1)])
def test_queued_behind_the_head_waits_for_capacity_at_its_position(
    index: int, head: int, position: int
) -> None:
    got = waiting_of(queued(index), snapshot(head_index=head, limit=4, in_use=3))
    assert got == Waiting(WaitingReason.CAPACITY, queue_position=position, limit=4, in_use=3)


def test_passed_by_the_head_is_admitted_not_waiting() -> None:
    assert waiting_of(queued(6), snapshot(head_index=7)) == NOT_WAITING


def test_without_a_snapshot_yet_the_wait_is_unknown() -> None:
    assert waiting_of(queued(6), None) == NOT_WAITING


def test_never_queued_is_not_waiting_whatever_the_queue() -> None:
    assert waiting_of(execution("tenant-a"), snapshot(head_index=0)) == NOT_WAITING
    assert waiting_of(execution("tenant-a"), None) == NOT_WAITING


def test_waiting_for_the_asset_comes_first_and_has_no_position() -> None:
    both = waiting_for_asset().model_copy(update={"queue_index": 3})
    assert waiting_of(both, snapshot(head_index=0)) == Waiting(WaitingReason.ASSET)
    assert waiting_of(waiting_for_asset(), None) == Waiting(WaitingReason.ASSET)


@pytest.mark.parametrize("status", [S.DISPATCHED, S.CANCELED])
def test_only_pending_executions_have_a_wait(status: S) -> None:
    moved = apply_status(queued(3), status, BASE_TIME)
    assert waiting_of(moved, snapshot(head_index=0)) is None
    assert waiting_of(moved, None) is None


def test_a_snapshot_of_another_queue_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="another"):
        waiting_of(queued(3), snapshot(job_runner="other-runner"))
    with pytest.raises(ValueError, match="another"):
        waiting_of(queued(3), snapshot(tenant_id="tenant-b"))


def test_the_runners_to_look_up_are_those_of_queued_pending_executions_once() -> None:
    executions = [
        queued(1, "github_actions", 0),
        queued(2, "github_actions", 1),
        queued(1, "runner#with#hashes", 2),
        waiting_for_asset(3).model_copy(update={"job_runner": "asset-runner"}),
        execution("tenant-a", 4).model_copy(update={"job_runner": "never-queued"}),
        apply_status(queued(5, "moved-on", 5), S.DISPATCHED, BASE_TIME),
    ]
    assert runners_to_look_up(executions) == {"github_actions", "runner#with#hashes"}
    assert runners_to_look_up([]) == frozenset()
