"""Random requests (of random priorities and supersede groups), releases, limit changes and the
passing of time, against a plain model of the policy: lists, sets and a sort."""

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from execution_stream.domain import commits
from execution_stream.domain.allocation import Allocator, Memory, Outcome, Result, SupersedeGroup

RUNNERS = ("github_actions", "jit")
TENANTS = ("a", "b")
EXECUTIONS = tuple(f"e{number}" for number in range(8))
RUNNER_OF = {execution_id: RUNNERS[number % 2] for number, execution_id in enumerate(EXECUTIONS)}
GROUPS = (None, "g1", "g2")
T0 = 1_800_000_000.0
AGING = 10.0


class Request(NamedTuple):
    tenant: str
    execution_id: str
    priority: int = 0
    group: str | None = None
    cancel_in_progress: bool = False


class Release(NamedTuple):
    tenant: str
    execution_id: str


class SetLimit(NamedTuple):
    limit: int


class Refill(NamedTuple):
    tenant: str
    runner: str


class Tick(NamedTuple):
    seconds: int


Operation = Request | Release | SetLimit | Refill | Tick

requests = st.builds(
    Request,
    st.sampled_from(TENANTS),
    st.sampled_from(EXECUTIONS),
    st.integers(0, 9),
    st.sampled_from(GROUPS),
    st.booleans(),
)
operations = st.lists(
    st.one_of(
        requests,
        requests,  # twice as likely: queues form
        st.builds(Release, st.sampled_from(TENANTS), st.sampled_from(EXECUTIONS)),
        st.builds(SetLimit, st.integers(0, 3)),
        st.builds(Refill, st.sampled_from(TENANTS), st.sampled_from(RUNNERS)),
        st.builds(Tick, st.integers(0, 30)),  # 80 of them stay within the memory of released ids
    ),
    min_size=20,  # long enough for queues to form, age and be superseded
    max_size=80,
)


@dataclass
class Waiting:
    execution_id: str
    priority: int
    enqueued_at: float
    arrival: int


Line = tuple[str, str]


@dataclass
class Model:
    """The policy as plainly as it can be said."""

    limit: int = 2
    now: float = T0
    holders: dict[Line, set[str]] = field(default_factory=dict)
    queues: dict[Line, list[Waiting]] = field(default_factory=dict)
    released: set[tuple[str, str]] = field(default_factory=set)
    groups: dict[tuple[str, str, str], str] = field(default_factory=dict)
    group_of: dict[tuple[str, str], str | None] = field(default_factory=dict)
    arrivals: int = 0

    def admit(self, tenant: str, runner: str) -> list[str]:
        held = self.holders.setdefault((tenant, runner), set())
        queue = self.queues.setdefault((tenant, runner), [])
        admitted = []
        while queue and len(held) < self.limit:
            # The highest effective priority, then the longest waiting, the lower class, the first come.
            best = min(queue, key=self._rank)
            queue.remove(best)
            admitted.append(best.execution_id)
            held.add(best.execution_id)
        return admitted

    def _rank(self, waiting: Waiting) -> tuple[int, float, int, int]:
        effective = waiting.priority + math.floor((self.now - waiting.enqueued_at) / AGING)
        return (-effective, waiting.enqueued_at, waiting.priority, waiting.arrival)

    def request(self, request: Request) -> tuple[list[str], list[tuple[str, bool]]]:
        tenant, execution_id = request.tenant, request.execution_id
        runner = RUNNER_OF[execution_id]
        held = self.holders.setdefault((tenant, runner), set())
        queue = self.queues.setdefault((tenant, runner), [])
        if execution_id in held:
            return [execution_id], []
        if execution_id in self._ids(queue) or (tenant, execution_id) in self.released:
            return [], []
        superseded = self._supersede(request, runner) if request.group else []
        self.group_of[(tenant, execution_id)] = request.group
        admitted = self.admit(tenant, runner)
        if not queue and len(held) < self.limit:
            held.add(execution_id)
            return [*admitted, execution_id], superseded
        queue.append(Waiting(execution_id, request.priority, self.now, self.arrivals))
        self.arrivals += 1
        return admitted, superseded

    def _supersede(self, request: Request, runner: str) -> list[tuple[str, bool]]:
        assert request.group is not None
        tenant, group = request.tenant, (request.tenant, runner, request.group)
        recorded = self.groups.get(group)
        superseded = []
        if recorded in self.holders[(tenant, runner)] and request.cancel_in_progress:
            superseded = [(recorded, False)]
        elif recorded is not None and recorded in self._ids(self.queues[(tenant, runner)]):
            self._remove(tenant, recorded)
            superseded = [(recorded, True)]
        self.groups[group] = request.execution_id
        return superseded

    def release(self, tenant: str, execution_id: str) -> list[str]:
        runner = RUNNER_OF[execution_id]
        held = self.holders.setdefault((tenant, runner), set())
        queue = self.queues.setdefault((tenant, runner), [])
        if execution_id not in held and execution_id not in self._ids(queue):
            return []
        self._remove(tenant, execution_id)
        return self.admit(tenant, runner)

    def _remove(self, tenant: str, execution_id: str) -> None:
        runner = RUNNER_OF[execution_id]
        self.holders[(tenant, runner)].discard(execution_id)
        queue = self.queues[(tenant, runner)]
        queue[:] = [w for w in queue if w.execution_id != execution_id]  # in place: callers hold it
        self.released.add((tenant, execution_id))
        group = self.group_of.get((tenant, execution_id))
        if group is not None and self.groups.get((tenant, runner, group)) == execution_id:
            del self.groups[(tenant, runner, group)]

    @staticmethod
    def _ids(queue: list[Waiting]) -> list[str]:
        return [w.execution_id for w in queue]


def decide(allocator: Allocator, model: Model, operation: Operation) -> tuple[Result | None, list[str]]:
    """The allocator's decision and the model's admissions for the same operation."""
    match operation:
        case Request(tenant, execution_id, priority, group, cancel):
            supersede = SupersedeGroup(group, cancel) if group else None
            runner = RUNNER_OF[execution_id]
            result = allocator.request(
                tenant, execution_id, "event", runner, now=model.now, priority=priority, group=supersede
            )
            expected, superseded = model.request(operation)
            assert [(s.execution_id, s.was_queued) for s in result.superseded] == superseded
            assert all(s.replaced_by == execution_id for s in result.superseded)
            return result, expected
        case Release(tenant, execution_id):
            return allocator.release(tenant, execution_id, None, now=model.now), model.release(
                tenant, execution_id
            )
        case Refill(tenant, runner):
            return allocator.refill(tenant, runner, now=model.now), model.admit(tenant, runner)
        case SetLimit(new_limit):
            model.limit = new_limit
        case Tick(seconds):
            model.now += seconds
    return None, []


@settings(max_examples=500, deadline=None)
@given(script=operations)
def test_the_allocator_does_what_the_model_does(script: list[Operation]) -> None:
    model = Model()
    table: dict[str, object] = {}
    allocator = Allocator(
        table, lambda tenant, runner: model.limit, Memory(3600.0, 1000), aging_seconds=AGING
    )
    admitted_once: set[tuple[str, str]] = set()
    for operation in [*script, SetLimit(100), *(Refill(t, r) for t in TENANTS for r in RUNNERS)]:
        result, expected = decide(allocator, model, operation)
        if result is None:
            continue
        # Applied after the decision, as the agent does once the effects are sent.
        commits.apply(table, result.writes)
        assert [a.execution_id for a in result.admitted] == expected, operation
        forwarded_again = (
            operation if isinstance(operation, Request) and result.outcome is Outcome.DUPLICATE else None
        )
        for admission in result.admitted:
            if forwarded_again is None:
                assert (admission.tenant_id, admission.execution_id) not in admitted_once
                admitted_once.add((admission.tenant_id, admission.execution_id))
        assert_same_lines(allocator, model)
        assert sum(key.startswith("S#") for key in table) == len(model.groups)
    assert not any(model.queues.values()), "every one waiting was admitted in the end"


def assert_same_lines(allocator: Allocator, model: Model) -> None:
    for (tenant, runner), held in model.holders.items():
        line = allocator.line(tenant, runner).line
        queue = model.queues[(tenant, runner)]
        assert line.in_use == len(held)
        assert line.queued == len(queue)
        assert {c: q.queued for c, q in line.classes.items() if q.queued} == {
            c: n for c in range(10) if (n := sum(w.priority == c for w in queue))
        }
