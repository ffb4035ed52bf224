"""Supersede groups: a group's newer request takes its older one out of the queue, or reports the
one in progress when the group cancels it, in the same commit; group keys do not accumulate."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest

from execution_stream.domain import commits
from execution_stream.domain.allocation import (
    Allocator,
    Memory,
    Outcome,
    Result,
    RunnerLine,
    Superseded,
    SupersedeGroup,
)
from execution_stream.domain.trace import TraceContext

T0 = 1_800_000_000.0
RUNNER = "github_actions"
GROUP = SupersedeGroup("digest-1")
CANCELING = SupersedeGroup("digest-1", cancel_in_progress=True)


def trace(n: int) -> TraceContext:
    return TraceContext.derived(f"execution-{n}")


class Allocations:
    def __init__(self, limit: int = 1, table: MutableMapping[str, Any] | None = None) -> None:
        self.table: MutableMapping[str, Any] = {} if table is None else table
        self.allocator = Allocator(self.table, lambda t, r: limit, Memory(3600.0, 1000))

    def decide(
        self, execution_id: str, group: SupersedeGroup | None = GROUP, runner: str = RUNNER, priority: int = 0
    ) -> Result:
        number = int(execution_id.rsplit("-", 1)[-1]) if execution_id[-1].isdigit() else 0
        return self.allocator.request(
            "t",
            execution_id,
            f"event-{execution_id}",
            runner,
            now=T0,
            trace=trace(number),
            priority=priority,
            group=group,
        )

    def request(self, execution_id: str, group: SupersedeGroup | None = GROUP, **kwargs: Any) -> Result:
        result = self.decide(execution_id, group, **kwargs)
        commits.apply(self.table, result.writes)
        return result

    def release(self, execution_id: str, runner: str = RUNNER) -> list[str]:
        result = self.allocator.release("t", execution_id, runner, now=T0 + 1)
        commits.apply(self.table, result.writes)
        return [a.execution_id for a in result.admitted]

    def line(self, runner: str = RUNNER) -> RunnerLine:
        return self.allocator.line("t", runner).line

    def group_keys(self) -> list[str]:
        return sorted(key for key in self.table if key.startswith("S#"))


def superseded(execution_id: str, replaced_by: str, *, was_queued: bool = True) -> Superseded:
    n = int(execution_id.rsplit("-", 1)[-1])
    return Superseded("t", execution_id, f"event-{execution_id}", RUNNER, replaced_by, was_queued, trace(n))


def test_each_request_of_a_group_takes_the_place_of_the_one_before_and_only_the_last_runs() -> None:
    allocations = Allocations(limit=1)
    allocations.request("busy", group=None)
    results = [allocations.request(f"run-{n}") for n in range(5)]

    assert [r.outcome for r in results] == [Outcome.QUEUED] * 5
    assert results[0].superseded == []
    for n in range(1, 5):
        assert results[n].superseded == [superseded(f"run-{n - 1}", f"run-{n}")]
    line = allocations.line()
    assert (line.queued, line.head, line.tail) == (1, 4, 5)  # the holes are passed: run-4 is next
    assert allocations.release("busy") == ["run-4"]
    assert allocations.line().queued == 0


def test_a_superseded_request_said_again_is_a_duplicate_that_neither_waits_nor_supersedes() -> None:
    allocations = Allocations(limit=1)
    allocations.request("busy", group=None)
    allocations.request("run-0")
    allocations.request("run-1")
    for replayed in ("run-0", "run-1"):
        again = allocations.request(replayed)
        assert (again.outcome, again.superseded, again.writes) == (Outcome.DUPLICATE, [], [])
    assert allocations.line().queued == 1
    assert allocations.release("busy") == ["run-1"]


def test_one_in_progress_is_reported_to_cancel_only_when_the_group_says_so_and_keeps_its_slot() -> None:
    allocations = Allocations(limit=2)
    allocations.request("run-0", CANCELING)
    kept = allocations.request("run-1", GROUP)
    assert (kept.outcome, kept.superseded) == (Outcome.ADMITTED, [])
    canceled = allocations.request("run-2", CANCELING)
    assert canceled.superseded == [superseded("run-1", "run-2", was_queued=False)]
    assert canceled.outcome is Outcome.QUEUED  # run-0 and run-1 hold both slots until they end
    assert allocations.line().in_use == 2
    assert allocations.release("run-1") == ["run-2"]
    assert allocations.group_keys() == ["S#t#digest-1#github_actions"]
    allocations.release("run-0")
    allocations.release("run-2")
    assert allocations.group_keys() == []


def test_another_group_or_another_runner_supersedes_nothing() -> None:
    allocations = Allocations(limit=0)
    allocations.request("run-0", SupersedeGroup("digest-1"))
    assert allocations.request("run-1", SupersedeGroup("digest-2")).superseded == []
    assert allocations.request("run-2", None).superseded == []
    assert allocations.request("run-3", SupersedeGroup("digest-1"), runner="other").superseded == []
    assert allocations.line().queued == 3
    assert allocations.request("run-4", SupersedeGroup("digest-2")).superseded == [
        superseded("run-1", "run-4")
    ]


def test_a_recorded_one_that_ended_is_not_superseded_and_its_group_key_is_gone() -> None:
    allocations = Allocations(limit=1)
    allocations.request("run-0", CANCELING)
    allocations.release("run-0")
    assert allocations.group_keys() == []
    result = allocations.request("run-1", CANCELING)
    assert (result.outcome, result.superseded) == (Outcome.ADMITTED, [])


def test_group_keys_go_with_their_recorded_executions_whichever_way_they_leave() -> None:
    allocations = Allocations(limit=1)
    allocations.request("busy", group=None)
    allocations.request("run-0", SupersedeGroup("a"))
    allocations.request("run-1", SupersedeGroup("b"))
    allocations.request("run-2", SupersedeGroup("c"))
    assert len(allocations.group_keys()) == 3
    allocations.release("run-1")  # canceled while it waits
    assert allocations.release("busy") == ["run-0"]
    allocations.release("run-0")  # done after it ran
    assert allocations.group_keys() == ["S#t#c#github_actions"]
    allocations.release("run-2")
    assert allocations.group_keys() == []


def test_a_superseded_one_in_a_priority_class_leaves_that_class() -> None:
    allocations = Allocations(limit=1)
    allocations.request("busy", group=None)
    allocations.request("run-0", priority=6)
    result = allocations.request("run-1", priority=2)
    assert result.superseded == [superseded("run-0", "run-1")]
    classes = allocations.line().classes
    assert (classes[6].queued, classes[2].queued) == (0, 1)


def test_the_supersede_and_the_request_are_one_commit_a_crash_cuts_short_and_its_replay_completes() -> None:
    reference = Allocations(limit=1)
    for execution_id in ("busy", "run-0", "run-1"):
        reference.request(execution_id, None if execution_id == "busy" else GROUP)
    probe = Allocations(limit=1)
    probe.request("busy", group=None)
    probe.request("run-0")
    cut = probe.decide("run-1")
    assert [w.key for w in cut.writes].count("L#t#github_actions") == 1
    for end in range(len(cut.writes) + 1):
        crashed = Allocations(limit=1, table=dict(probe.table))
        commits.apply(crashed.table, cut.writes[:end])
        replayed = crashed.request("run-1")
        assert crashed.line() == reference.line(), end
        assert crashed.group_keys() == reference.group_keys()
        reported = cut.superseded if replayed.outcome is Outcome.DUPLICATE else replayed.superseded
        assert reported == [superseded("run-0", "run-1")]
        assert crashed.release("busy") == ["run-1"]


@pytest.mark.parametrize("key", ["", "a#b"])
def test_a_group_key_is_not_empty_and_has_no_hash(key: str) -> None:
    with pytest.raises(ValueError, match="no '#'"):
        SupersedeGroup(key)


def test_the_supersede_comes_before_free_slots_are_filled_so_the_replaced_one_never_starts() -> None:
    limit = [1]
    allocations = Allocations()
    allocations.allocator.limit_for = lambda t, r: limit[0]
    allocations.request("busy", group=None)
    allocations.request("run-0")
    limit[0] = 2  # raised, and no refill came yet
    result = allocations.request("run-1")
    assert result.superseded == [superseded("run-0", "run-1")]
    assert (result.outcome, [a.execution_id for a in result.admitted]) == (Outcome.ADMITTED, ["run-1"])
