"""Why a pending execution waits and its queue position: the pure rule, case by case."""

from __future__ import annotations

from dataclasses import replace

import pytest

from execution_stream.domain.executions import apply_status
from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import QueueClass
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


# Priority classes: class 0 admits at 7 with 3 waiting, class 5 at 2 with 4, class 9 at 0 with 1.
CLASSES = {0: QueueClass(7, 3), 5: QueueClass(2, 4), 9: QueueClass(0, 1)}


def in_class(index: int, priority: int | None) -> Execution:
    return queued(index).model_copy(update={"queue_priority": priority})


@pytest.mark.parametrize(
    ("index", "priority", "position"),
    [
        (0, 9, 1),  # the highest class's head
        (2, 5, 2),  # behind class 9's one
        (5, 5, 5),
        (7, 0, 6),  # behind every higher class's 5
        (9, 0, 8),
        (9, None, 8),  # stored without a class: class 0
    ],
)
def test_a_position_counts_those_ahead_in_its_class_and_all_in_higher_classes(
    index: int, priority: int | None, position: int
) -> None:
    classes_snapshot = replace(snapshot(head_index=7, queued=8, limit=4, in_use=4), classes=CLASSES)
    got = waiting_of(in_class(index, priority), classes_snapshot)
    assert got == Waiting(WaitingReason.CAPACITY, queue_position=position, limit=4, in_use=4)


def test_passed_by_its_own_classs_head_is_admitted_whatever_the_other_classes() -> None:
    classes_snapshot = replace(snapshot(head_index=7), classes=CLASSES)
    assert waiting_of(in_class(1, 5), classes_snapshot) == NOT_WAITING
    assert waiting_of(in_class(6, 0), classes_snapshot) == NOT_WAITING


def test_a_class_the_snapshot_does_not_know_yet_has_no_position() -> None:
    assert waiting_of(in_class(0, 3), replace(snapshot(), classes=CLASSES)) == NOT_WAITING
    assert waiting_of(in_class(0, 3), snapshot(head_index=0)) == NOT_WAITING


def test_a_snapshot_from_before_classes_is_all_class_0() -> None:
    old = snapshot(head_index=7, queued=5, limit=4, in_use=3)
    assert old.class_queues() == {0: QueueClass(7, 5)}
    assert waiting_of(in_class(9, 0), old) == Waiting(
        WaitingReason.CAPACITY, queue_position=3, limit=4, in_use=3
    )
