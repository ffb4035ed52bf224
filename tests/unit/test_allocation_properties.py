"""Random requests, releases and limit changes, against a plain model of the policy: lists and sets."""

from dataclasses import dataclass, field
from typing import NamedTuple

from hypothesis import given, settings
from hypothesis import strategies as st

from execution_stream.domain import commits
from execution_stream.domain.allocation import Allocator, Memory

RUNNERS = ("github_actions", "jit")
TENANTS = ("a", "b")
EXECUTIONS = tuple(f"e{number}" for number in range(8))
RUNNER_OF = {execution_id: RUNNERS[number % 2] for number, execution_id in enumerate(EXECUTIONS)}
T0 = 1_800_000_000.0


class Request(NamedTuple):
    tenant: str
    execution_id: str


class Release(NamedTuple):
    tenant: str
    execution_id: str


class SetLimit(NamedTuple):
    limit: int


class Refill(NamedTuple):
    tenant: str
    runner: str


operations = st.lists(
    st.one_of(
        st.builds(Request, st.sampled_from(TENANTS), st.sampled_from(EXECUTIONS)),
        st.builds(Release, st.sampled_from(TENANTS), st.sampled_from(EXECUTIONS)),
        st.builds(SetLimit, st.integers(0, 3)),
        st.builds(Refill, st.sampled_from(TENANTS), st.sampled_from(RUNNERS)),
    ),
    max_size=80,
)


@dataclass
class Model:
    """The policy as plainly as it can be said."""

    limit: int = 2
    holders: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    queues: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    released: set[tuple[str, str]] = field(default_factory=set)

    def admit(self, tenant: str, runner: str) -> list[str]:
        held = self.holders.setdefault((tenant, runner), set())
        queue = self.queues.setdefault((tenant, runner), [])
        admitted = []
        while queue and len(held) < self.limit:
            admitted.append(queue.pop(0))
            held.add(admitted[-1])
        return admitted

    def request(self, tenant: str, execution_id: str) -> list[str]:
        runner = RUNNER_OF[execution_id]
        held = self.holders.setdefault((tenant, runner), set())
        queue = self.queues.setdefault((tenant, runner), [])
        if execution_id in held:
            return [execution_id]
        if execution_id in queue or (tenant, execution_id) in self.released:
            return []
        admitted = self.admit(tenant, runner)
        if not queue and len(held) < self.limit:
            held.add(execution_id)
            return [*admitted, execution_id]
        queue.append(execution_id)
        return admitted

    def release(self, tenant: str, execution_id: str) -> list[str]:
        runner = RUNNER_OF[execution_id]
        held = self.holders.setdefault((tenant, runner), set())
        queue = self.queues.setdefault((tenant, runner), [])
        if execution_id not in held and execution_id not in queue:
            return []
        held.discard(execution_id)
        if execution_id in queue:
            queue.remove(execution_id)
        self.released.add((tenant, execution_id))
        return self.admit(tenant, runner)


@settings(max_examples=300, deadline=None)
@given(script=operations)
def test_the_allocator_does_what_the_model_does(script: list[Request | Release | SetLimit | Refill]) -> None:
    model = Model()
    limit = [2]
    table: dict[str, object] = {}
    allocations = Allocator(table, lambda tenant, runner: limit[0], Memory(3600.0, 1000))
    for operation in script:
        writes: list[commits.Write] = []
        match operation:
            case Request(tenant, execution_id):
                result = allocations.request(tenant, execution_id, "event", RUNNER_OF[execution_id], now=T0)
                got, writes = [a.execution_id for a in result.admitted], result.writes
                expected = model.request(tenant, execution_id)
            case Release(tenant, execution_id):
                result = allocations.release(tenant, execution_id, None, now=T0)
                got, writes = [a.execution_id for a in result.admitted], result.writes
                expected = model.release(tenant, execution_id)
            case SetLimit(new_limit):
                limit[0] = model.limit = new_limit
                got = expected = []
            case Refill(tenant, runner):
                result = allocations.refill(tenant, runner, now=T0)
                got, writes = [a.execution_id for a in result.admitted], result.writes
                expected = model.admit(tenant, runner)
        # Applied after the decision, as the agent does once the effects are sent.
        commits.apply(table, writes)
        assert got == expected, operation
        for (tenant, runner), held in model.holders.items():
            line = allocations.line(tenant, runner).line
            assert line.in_use == len(held)
            assert line.queued == len(model.queues[(tenant, runner)])
