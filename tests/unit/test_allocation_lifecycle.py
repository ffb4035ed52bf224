"""The allocator's part in retries and cancels: a holder dispatched again keeps its slot and is timed
anew; a cancel's grace period ends as an overdue cancel unless the execution ends before."""

from __future__ import annotations

from typing import Any

from execution_stream.domain.allocation import Allocator, Memory, Result
from execution_stream.domain.commits import apply

TENANT, RUNNER = "tenant-a", "jit_runner"
TIMEOUT = 600.0


def allocator(table: dict[str, Any]) -> Allocator:
    return Allocator(table, lambda tenant, runner: 1, Memory(3600.0, 100))


def done(table: dict[str, Any], result: Result) -> Result:
    apply(table, result.writes)
    return result


def holding(table: dict[str, Any], execution_id: str, now: float = 0.0) -> Allocator:
    slots = allocator(table)
    done(table, slots.request(TENANT, execution_id, "event-1", RUNNER, now=now))
    done(table, slots.set_deadline(TENANT, execution_id, RUNNER, now + TIMEOUT))
    return slots


def test_a_retried_holder_keeps_its_slot_and_is_dispatched_again_when_its_time_comes() -> None:
    table: dict[str, Any] = {}
    slots = holding(table, "e1")
    done(table, slots.request(TENANT, "e2", "event-2", RUNNER, now=1.0))  # waits: the slot is e1's

    done(table, slots.redispatch(TENANT, "e1", RUNNER, retry_at=100.0, now=50.0))

    assert slots.line(TENANT, RUNNER).line.in_use == 1
    assert slots.due_retries(99.0) == []
    [retry] = slots.due_retries(100.0)
    assert (retry.execution_id, retry.attempt) == ("e1", 0)
    # Timed from the retry, not from its first grant: not overdue at the old deadline.
    assert slots.overdue(TIMEOUT + 1.0, TIMEOUT) == []
    assert [o.execution_id for o in slots.overdue(50.0 + TIMEOUT + 1.0, TIMEOUT)] == ["e1"]


def test_a_redispatch_of_an_execution_no_longer_holding_changes_nothing() -> None:
    table: dict[str, Any] = {}
    slots = holding(table, "e1")
    done(table, slots.release(TENANT, "e1", RUNNER, now=5.0))

    assert slots.redispatch(TENANT, "e1", RUNNER, retry_at=10.0, now=6.0).writes == []
    assert slots.due_retries(20.0) == []


def test_an_unconfirmed_cancel_is_overdue_at_the_end_of_its_grace_period() -> None:
    table: dict[str, Any] = {}
    slots = holding(table, "e1")

    done(table, slots.cancel_requested(TENANT, "e1", RUNNER, confirm_by=30.0))

    assert slots.overdue(30.0, TIMEOUT) == []
    [late] = slots.overdue(31.0, TIMEOUT)
    assert (late.execution_id, late.cancel_unconfirmed, late.deadline_at) == ("e1", True, 30.0)
    assert slots.cancel_requested(TENANT, "e1", RUNNER, confirm_by=30.0).writes == []  # said again


def test_a_cancel_confirmed_in_time_leaves_nothing_overdue() -> None:
    table: dict[str, Any] = {}
    slots = holding(table, "e1")
    done(table, slots.cancel_requested(TENANT, "e1", RUNNER, confirm_by=30.0))

    done(table, slots.release(TENANT, "e1", RUNNER, now=10.0))

    assert slots.overdue(31.0, TIMEOUT) == []
    assert slots.line(TENANT, RUNNER).line.in_use == 0
