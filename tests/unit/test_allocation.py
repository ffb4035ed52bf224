"""The allocation policy: limits, arrival order, duplicates, deadlines, and a cost that does not grow."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from execution_stream.domain import commits
from execution_stream.domain.allocation import (
    Admission,
    Allocator,
    Memory,
    Outcome,
    Overdue,
    Result,
    RunnerLine,
)

T0 = 1_800_000_000.0
TIMEOUT = 3600.0


class Allocations:
    """An allocator whose operations apply their writes at once, as the agent does after sending."""

    def __init__(self, table: MutableMapping[str, Any], limit_for: Any, memory: Memory) -> None:
        self.table = table
        self.allocator = Allocator(table, limit_for, memory)

    def request(
        self, tenant: str, execution_id: str, jit_event_id: str, runner: str, *, now: float
    ) -> Result:
        return self._applied(self.allocator.request(tenant, execution_id, jit_event_id, runner, now=now))

    def release(
        self, tenant: str, execution_id: str, *, now: float, runner: str | None = "jit"
    ) -> list[Admission]:
        return self._applied(self.allocator.release(tenant, execution_id, runner, now=now)).admitted

    def refill(self, tenant: str, runner: str, *, now: float) -> list[Admission]:
        return self._applied(self.allocator.refill(tenant, runner, now=now)).admitted

    def set_deadline(self, tenant: str, execution_id: str, deadline_at: float) -> None:
        self._applied(self.allocator.set_deadline(tenant, execution_id, "jit", deadline_at))

    def overdue(self, now: float, timeout_seconds: float) -> list[Overdue]:
        return self.allocator.overdue(now, timeout_seconds)

    def line(self, tenant: str, runner: str) -> RunnerLine:
        return self.allocator.line(tenant, runner).line

    def _applied(self, result: Result) -> Result:
        commits.apply(self.table, result.writes)
        return result


def allocator(
    limit: int = 2, *, memory: Memory | None = None, limits: dict[str, int] | None = None
) -> Allocations:
    per_tenant = limits or {}
    return Allocations(
        {}, lambda tenant, runner: per_tenant.get(tenant, limit), memory or Memory(3600.0, 1000)
    )


def admitted_ids(
    allocations: Allocations, tenant: str, ids: list[str], runner: str = "jit", now: float = T0
) -> list[str]:
    forwarded = []
    for execution_id in ids:
        decision = allocations.request(tenant, execution_id, f"event-{execution_id}", runner, now=now)
        forwarded += [a.execution_id for a in decision.admitted]
    return forwarded


def test_admits_up_to_the_limit_and_the_oldest_waiting_on_each_release() -> None:
    allocations = allocator(limit=2)
    assert admitted_ids(allocations, "a", ["e1", "e2", "e3", "e4", "e5"]) == ["e1", "e2"]
    order = []
    for done in ["e1", "e2", "e3", "e4", "e5"]:
        order += [a.execution_id for a in allocations.release("a", done, now=T0 + 1)]
    assert order == ["e3", "e4", "e5"]
    assert allocations.line("a", "jit").in_use == 0


def test_one_tenant_at_its_limit_never_holds_back_another_or_another_runner() -> None:
    allocations = allocator(limit=1)
    assert admitted_ids(allocations, "busy", ["b1", "b2", "b3"]) == ["b1"]
    assert admitted_ids(allocations, "quiet", ["q1"]) == ["q1"]
    assert admitted_ids(allocations, "busy", ["b4"], runner="github_actions") == ["b4"]
    assert [a.execution_id for a in allocations.release("busy", "b4", now=T0, runner=None)] == []
    assert allocations.line("busy", "github_actions").in_use == 0


def test_a_duplicate_request_takes_no_second_slot_and_a_holder_is_forwarded_again() -> None:
    allocations = allocator(limit=1)
    admitted_ids(allocations, "a", ["e1", "e2"])
    held = allocations.request("a", "e1", "event-e1", "jit", now=T0)
    waiting = allocations.request("a", "e2", "event-e2", "jit", now=T0)
    assert (held.outcome, [x.execution_id for x in held.admitted]) == (Outcome.DUPLICATE, ["e1"])
    assert (waiting.outcome, waiting.admitted) == (Outcome.DUPLICATE, [])
    allocations.release("a", "e1", now=T0)
    allocations.release("a", "e2", now=T0)
    replayed = allocations.request("a", "e1", "event-e1", "jit", now=T0 + 5)
    assert (replayed.outcome, replayed.admitted) == (Outcome.DUPLICATE, [])
    assert allocations.line("a", "jit").in_use == 0


def test_an_execution_released_while_it_waits_is_never_admitted_and_leaves_no_hole_in_positions() -> None:
    allocations = allocator(limit=1)
    admitted_ids(allocations, "a", ["e1", "e2", "e3", "e4"])
    assert allocations.release("a", "e2", now=T0) == []
    line = allocations.line("a", "jit")
    assert (line.queued, line.head) == (2, 1)  # e2 had index 0; e3, at 1, is next: position 1
    assert [a.execution_id for a in allocations.release("a", "e1", now=T0)] == ["e3"]


def test_a_raised_limit_admits_on_refill_and_a_lowered_one_admits_nobody_until_below_it() -> None:
    limits = {"a": 1}
    allocations = Allocations({}, lambda tenant, runner: limits[tenant], Memory(60.0, 100))
    admitted_ids(allocations, "a", ["e1", "e2", "e3", "e4"])
    limits["a"] = 3
    assert [a.execution_id for a in allocations.refill("a", "jit", now=T0)] == ["e2", "e3"]
    limits["a"] = 1
    assert allocations.release("a", "e1", now=T0) == []
    assert allocations.release("a", "e2", now=T0) == []
    assert [a.execution_id for a in allocations.release("a", "e3", now=T0)] == ["e4"]


# The three deadline defects of the earlier per-tenant state, each as the behaviour now required.


def test_the_watchdog_times_a_dispatched_job_from_its_dispatch_deadline_not_from_its_slot() -> None:
    allocations = allocator()
    admitted_ids(allocations, "a", ["e1"])
    dispatched_at = T0 + 600  # it waited 10 minutes for its runner
    allocations.set_deadline("a", "e1", dispatched_at + TIMEOUT)
    assert allocations.overdue(T0 + TIMEOUT + 1, TIMEOUT) == []
    [late] = allocations.overdue(dispatched_at + TIMEOUT + 1, TIMEOUT)
    assert (late.execution_id, late.deadline_at) == ("e1", dispatched_at + TIMEOUT)


def test_no_time_reclaims_a_slot_the_watchdog_fails_the_job_first() -> None:
    allocations = allocator(limit=1)
    admitted_ids(allocations, "a", ["e1"])
    much_later = T0 + 30 * 24 * 3600
    assert admitted_ids(allocations, "a", ["e2"], now=much_later) == []
    assert [late.execution_id for late in allocations.overdue(much_later, TIMEOUT)] == ["e1"]
    assert [a.execution_id for a in allocations.release("a", "e1", now=much_later)] == ["e2"]


def test_a_changed_timeout_applies_to_existing_holders_and_the_limit_is_never_exceeded() -> None:
    allocations = allocator(limit=2)
    admitted_ids(allocations, "a", ["e1", "e2"])
    raised = 4 * TIMEOUT
    later = T0 + 2 * TIMEOUT
    assert allocations.overdue(later, raised) == []
    assert admitted_ids(allocations, "a", ["e3", "e4"], now=later) == []
    assert allocations.line("a", "jit").in_use == 2
    assert [o.execution_id for o in allocations.overdue(later, TIMEOUT)] == ["e1", "e2"]


def test_released_ids_are_forgotten_by_age_and_by_count() -> None:
    allocations = allocator(limit=100, memory=Memory(seconds=60.0, count=3))
    ids = [f"e{n}" for n in range(10)]
    admitted_ids(allocations, "a", ids)
    for execution_id in ids:
        allocations.release("a", execution_id, now=T0)
    remembered = [key for key in allocations.table if key.startswith("M#")]
    assert len(remembered) <= 3 + 4
    for n in range(5):
        allocations.request("a", f"fresh{n}", "event-fresh", "jit", now=T0 + 61)
    assert [key for key in allocations.table if key.startswith("M#a#e")] == []


class CountingStore(dict[str, Any]):
    """A dict that counts writes and remembers the largest value written, as JSON."""

    writes = 0
    largest = 0

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes += 1
        self.largest = max(self.largest, len(json.dumps(value)) + len(key))
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes += 1
        super().__delitem__(key)


def test_one_request_and_one_release_cost_the_same_writes_at_a_backlog_of_10_or_10000() -> None:
    costs = []
    for backlog in (10, 10_000):
        table = CountingStore()
        allocations = Allocations(table, lambda tenant, runner: 2, Memory(3600.0, 10_000))
        admitted_ids(allocations, "a", [f"e{n}" for n in range(backlog)])
        before = table.writes
        allocations.request("a", "newest", "event-newest", "jit", now=T0)
        allocations.release("a", "e0", now=T0)
        costs.append(table.writes - before)
        assert table.largest < 400
    assert costs[0] == costs[1]


def test_a_crash_anywhere_in_a_commit_and_its_replay_leave_the_same_state_as_no_crash() -> None:
    """The agent replays a message whose writes a crash cut short: any prefix of them survived."""
    script = [("request", f"e{n}") for n in range(5)] + [
        ("release", "e0"),
        ("release", "e3"),
        ("release", "e1"),
    ]
    for crash_at, (kind, execution_id) in enumerate(script):
        reference = allocator(limit=2)
        for step_kind, step_id in script:
            _operate(reference, step_kind, step_id)
        probe = allocator(limit=2)
        for step_kind, step_id in script[:crash_at]:
            _operate(probe, step_kind, step_id)
        interrupted = _decide(probe, kind, execution_id)
        for survived in (interrupted.writes[:end] for end in range(len(interrupted.writes) + 1)):
            crashed = Allocations(dict(probe.table), probe.allocator.limit_for, probe.allocator.memory)
            commits.apply(crashed.table, survived)
            for step_kind, step_id in script[crash_at:]:
                _operate(crashed, step_kind, step_id)
            assert crashed.line("a", "jit") == reference.line("a", "jit"), (crash_at, len(survived))
            assert _holders(crashed) == _holders(reference)


def _decide(allocations: Allocations, kind: str, execution_id: str) -> Result:
    if kind == "request":
        return allocations.allocator.request("a", execution_id, "event", "jit", now=T0)
    return allocations.allocator.release("a", execution_id, "jit", now=T0)


def _operate(allocations: Allocations, kind: str, execution_id: str) -> None:
    commits.apply(allocations.table, _decide(allocations, kind, execution_id).writes)


def _holders(allocations: Allocations) -> list[str]:
    return sorted(o.execution_id for o in allocations.overdue(T0 + 10 * TIMEOUT, TIMEOUT))
