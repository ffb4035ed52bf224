"""Priority classes: a higher class is admitted first, FIFO within a class, aging keeps the lowest
from starving, positions per class, and a line written before classes existed keeps working."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import MutableMapping
from typing import Any

import pytest

from execution_stream.domain import commits
from execution_stream.domain.allocation import (
    Allocator,
    ClassQueue,
    Memory,
    Outcome,
    Queued,
    Result,
    RunnerLine,
    SupersedeGroup,
)
from execution_stream.domain.models import Execution
from execution_stream.domain.store import QueueClass, QueueSnapshot
from execution_stream.domain.waiting import waiting_of
from tests.support.factories import execution

T0 = 1_800_000_000.0
AGING = 600.0
RUNNER = "jit#runner"  # a runner name may contain '#'


class Allocations:
    """An allocator whose operations apply their writes at once, as the agent does after sending."""

    def __init__(self, limit: int = 1, aging_seconds: float = AGING, table: Any = None) -> None:
        self.table: MutableMapping[str, Any] = {} if table is None else table
        self.limit = limit
        self.allocator = Allocator(
            self.table, lambda t, r: self.limit, Memory(3600.0, 1000), aging_seconds=aging_seconds
        )

    def request(self, execution_id: str, priority: int = 0, *, now: float = T0) -> Result:
        result = self.allocator.request(
            "t", execution_id, f"event-{execution_id}", RUNNER, now=now, priority=priority
        )
        commits.apply(self.table, result.writes)
        return result

    def release(self, execution_id: str, *, now: float = T0) -> list[str]:
        result = self.allocator.release("t", execution_id, RUNNER, now=now)
        commits.apply(self.table, result.writes)
        return [a.execution_id for a in result.admitted]

    def line(self) -> RunnerLine:
        return self.allocator.line("t", RUNNER).line


def admitted(result: Result) -> list[str]:
    return [a.execution_id for a in result.admitted]


def run_to_the_end(allocations: Allocations, holding: list[str], *, now: float) -> list[str]:
    """Release the holders one at a time, oldest first, until nobody holds: the admission order."""
    order, holders = [], deque(holding)
    while holders:
        freed = allocations.release(holders.popleft(), now=now)
        order += freed
        holders.extend(freed)
    return order


def test_three_class_5_overtake_100_class_0_and_every_one_is_admitted_exactly_once() -> None:
    allocations = Allocations(limit=2)
    low = [f"low{n}" for n in range(100)]
    high = [f"high{n}" for n in range(3)]
    first = [e for n in low for e in admitted(allocations.request(n, 0))]
    first += [e for n in high for e in admitted(allocations.request(n, 5, now=T0 + 1))]
    assert first == ["low0", "low1"]

    order = first + run_to_the_end(allocations, first, now=T0 + 2)

    assert order[2:5] == high
    assert order == ["low0", "low1", *high, *low[2:]]
    assert Counter(order) == Counter(low + high)
    line = allocations.line()
    assert (line.in_use, line.queued) == (0, 0)


def test_fifo_within_each_class_and_the_higher_class_first() -> None:
    allocations = Allocations(limit=1)
    script = [("holder", 0), ("a3", 3), ("x0", 0), ("b3", 3), ("p7", 7), ("c3", 3), ("q7", 7), ("y0", 0)]
    for n, (execution_id, priority) in enumerate(script):
        allocations.request(execution_id, priority, now=T0 + n)
    order = run_to_the_end(allocations, ["holder"], now=T0 + 10)
    assert order == ["p7", "q7", "a3", "b3", "c3", "x0", "y0"]


@pytest.mark.parametrize(
    ("released_at", "first"),
    [
        (T0 + 9 * AGING - 1, "new9"),  # the old one is at 0 + 8: the new class 9 goes first
        (T0 + 9 * AGING, "old0"),  # 0 + 9 against 9 + 0: the tie goes to the one waiting longer
        (T0 + 30 * AGING, "old0"),  # 0 + 30 against 9 + 21
    ],
)
def test_a_class_0_that_waited_long_enough_outranks_a_new_class_9(released_at: float, first: str) -> None:
    allocations = Allocations(limit=1)
    allocations.request("holder")
    allocations.request("old0", 0, now=T0)
    allocations.request("new9", 9, now=T0 + 9 * AGING - 100)
    assert allocations.release("holder", now=released_at) == [first]


def test_without_aging_the_classes_are_strict_however_long_one_waits() -> None:
    allocations = Allocations(limit=1, aging_seconds=math.inf)
    allocations.request("holder")
    allocations.request("old0", 0, now=T0)
    allocations.request("new1", 1, now=T0 + 10**9)
    assert allocations.release("holder", now=T0 + 10**9) == ["new1"]


def test_a_clock_that_went_back_lowers_no_priority() -> None:
    allocations = Allocations(limit=1, aging_seconds=1.0)
    allocations.request("holder")
    allocations.request("late1", 1, now=T0 + 100)
    allocations.request("early0", 0, now=T0)
    assert allocations.release("holder", now=T0) == ["late1"]


@pytest.mark.parametrize("priority", [-1, 10, True, 2.0])
def test_a_priority_outside_0_to_9_is_refused(priority: Any) -> None:
    allocations = Allocations()
    with pytest.raises(ValueError, match="from 0 to 9"):
        allocations.request("e1", priority)
    assert allocations.table == {}


@pytest.mark.parametrize("aging", [0.0, -1.0, math.nan])
def test_aging_must_be_positive(aging: float) -> None:
    with pytest.raises(ValueError, match="aging_seconds"):
        Allocations(aging_seconds=aging)


def test_the_line_shows_each_class_and_the_oldest_waiting_of_any_class() -> None:
    allocations = Allocations(limit=1)
    allocations.request("holder", now=T0)
    queued = [allocations.request(eid, p, now=T0 + n).queued for n, (eid, p) in enumerate(LINE_UP, 1)]
    assert queued == [
        Queued("t", "p5", "event-p5", RUNNER, 0, 5),
        Queued("t", "b0", "event-b0", RUNNER, 0, 0),
        Queued("t", "q5", "event-q5", RUNNER, 1, 5),
        Queued("t", "c0", "event-c0", RUNNER, 1, 0),
    ]
    view = allocations.allocator.line("t", RUNNER)
    assert view.line.classes == {0: ClassQueue(0, 2, 2), 5: ClassQueue(0, 2, 2)}
    assert (view.line.head, view.line.tail, view.line.queued) == (0, 2, 4)
    assert view.oldest_waiting_since == T0 + 1  # p5's: class 5's head, not class 0's
    allocations.release("holder", now=T0 + 9)
    view = allocations.allocator.line("t", RUNNER)
    assert view.line.classes == {0: ClassQueue(0, 2, 2), 5: ClassQueue(1, 2, 1)}
    assert view.oldest_waiting_since == T0 + 2  # now b0's, class 0's head


LINE_UP = [("p5", 5), ("b0", 0), ("q5", 5), ("c0", 0)]


def snapshot_of(line: RunnerLine, limit: int) -> QueueSnapshot:
    """As the queue view writes it and the reader reads it back."""
    classes = {c: QueueClass(q.head, q.queued) for c, q in line.classes.items()}
    return QueueSnapshot("t", RUNNER, limit, line.in_use, line.head, line.queued, line.version, "", classes)


def pending(result: Result, number: int) -> Execution:
    assert result.queued is not None
    fields = {
        "job_runner": RUNNER,
        "queue_index": result.queued.index,
        "queue_priority": result.queued.priority,
    }
    return execution("t", number).model_copy(update=fields)


def test_positions_count_those_ahead_in_the_class_and_every_higher_class() -> None:
    allocations = Allocations(limit=1)
    allocations.request("holder", now=T0)
    waiting = {
        eid: pending(allocations.request(eid, p, now=T0 + n), n) for n, (eid, p) in enumerate(LINE_UP, 1)
    }

    def positions() -> dict[str, int | None]:
        snapshot = snapshot_of(allocations.line(), allocations.limit)
        return {eid: getattr(waiting_of(e, snapshot), "queue_position", None) for eid, e in waiting.items()}

    assert positions() == {"p5": 1, "q5": 2, "b0": 3, "c0": 4}
    assert allocations.release("holder") == ["p5"]
    assert positions() == {"p5": None, "q5": 1, "b0": 2, "c0": 3}
    allocations.release("b0")  # taken out at class 0's head: the head moves past it
    assert positions() == {"p5": None, "q5": 1, "b0": None, "c0": 2}


# The "old writer": today's Line.grant and Line.enqueue, as the version before priority classes
# wrote a line, copied here so the upgrade is tested against that exact layout.
OLD_EMPTY_LINE = {"in_use": 0, "waiting": 0, "head": 0, "tail": 0, "released_head": 0, "released_tail": 0}
# As the old version left a line once it had admitted the first 5 it queued (their keys are gone).
OLD_LINE_PAST_5 = {**OLD_EMPTY_LINE, "head": 5, "tail": 5}


def old_request(table: MutableMapping[str, Any], execution_id: str, limit: int, now: float) -> None:
    commit = commits.Commit.open(table, f"L#t#{RUNNER}", OLD_LINE_PAST_5)
    head = commit.head
    if head["waiting"] == 0 and head["in_use"] < limit:
        holder = {
            "runner": RUNNER,
            "jit_event_id": f"event-{execution_id}",
            "granted_at": now,
            "deadline_at": None,
        }
        commit.set(f"H#t#{execution_id}", holder)
        head["in_use"] += 1
    else:
        index = head["tail"]
        reference = {
            "execution_id": execution_id,
            "jit_event_id": f"event-{execution_id}",
            "enqueued_at": now,
        }
        commit.set(f"Q#t#{index}#{RUNNER}", reference)
        commit.set(f"M#t#{execution_id}", {"state": "queued", "runner": RUNNER, "index": index})
        head["tail"] += 1
        head["waiting"] += 1
    commits.apply(table, commit.writes())


def test_a_line_written_before_priority_classes_is_all_class_0_and_keeps_working() -> None:
    table: dict[str, Any] = {}
    for n, execution_id in enumerate(["old-holder", "old1", "old2", "old3"]):
        old_request(table, execution_id, limit=1, now=T0 + n)
    assert "Q#t#5#jit#runner" in table
    allocations = Allocations(limit=1, table=table)

    line = allocations.line()
    assert (line.in_use, line.queued, line.head, line.tail) == (1, 3, 5, 8)
    assert line.classes == {0: ClassQueue(5, 8, 3)}
    duplicate = allocations.request("old2", 7)
    assert (duplicate.outcome, duplicate.queued) == (
        Outcome.DUPLICATE,
        Queued("t", "old2", "event-old2", RUNNER, 6),
    )
    assert allocations.request("new0", 0, now=T0 + 10).queued == Queued("t", "new0", "event-new0", RUNNER, 8)
    assert "Q#t#8#jit#runner" in table  # class 0 keeps the old keys
    allocations.request("new5", 5, now=T0 + 11)
    assert allocations.release("old3") == []
    order = run_to_the_end(allocations, ["old-holder"], now=T0 + 12)
    assert order == ["new5", "old1", "old2", "new0"]
    assert allocations.line().queued == 0
    assert not [key for key in table if key.startswith(("Q#", "H#"))]


def test_class_keys_stay_apart_from_class_0_keys_whatever_the_runner_is_called() -> None:
    """Class 5's index 2 on runner "r" against class 0's index 5 on runner "2#r"."""
    table: dict[str, Any] = {}
    allocator = Allocator(table, lambda t, r: 0, Memory(3600.0, 1000))
    for runner, count, priority in (("r", 3, 5), ("2#r", 6, 0)):
        for n in range(count):
            commits.apply(
                table, allocator.request("t", f"{runner}-{n}", "ev", runner, now=T0, priority=priority).writes
            )
    queue_keys = [key for key in table if key.startswith("Q#")]
    assert len(queue_keys) == 9
    assert "Q#t#5:2#r" in queue_keys
    assert "Q#t#5#2#r" in queue_keys


def test_a_group_is_remembered_with_the_priority_of_a_queued_one() -> None:
    allocations = Allocations(limit=1)
    allocations.request("holder")
    group = SupersedeGroup("g")
    for execution_id in ("first", "second"):
        result = allocations.allocator.request(
            "t", execution_id, "ev", RUNNER, now=T0, priority=4, group=group
        )
        commits.apply(allocations.table, result.writes)
    assert [s.execution_id for s in result.superseded] == ["first"]
    assert allocations.line().classes[4] == ClassQueue(1, 2, 1)
    assert allocations.release("holder") == ["second"]


def test_a_queued_one_requested_again_is_a_duplicate_in_its_own_class_whatever_is_asked() -> None:
    allocations = Allocations(limit=1)
    allocations.request("holder")
    first = allocations.request("e5", 5)
    again = allocations.request("e5", 0)
    assert again.outcome is Outcome.DUPLICATE
    assert again.queued == first.queued == Queued("t", "e5", "event-e5", RUNNER, 0, 5)
    assert allocations.line().classes == {0: ClassQueue(0, 0, 0), 5: ClassQueue(0, 1, 1)}
