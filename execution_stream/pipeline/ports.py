"""What the pipeline steps need of the outside world: the execution store, assets, dispatchers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from execution_stream.domain.allocation import Queued, RunnerLine
from execution_stream.domain.dispatch import CancelOutcome, GithubRun, RunDetails
from execution_stream.domain.enrichment import DispatchedJob, GithubWorkflowTarget
from execution_stream.domain.models import Asset, Attempt, Execution
from execution_stream.domain.store import CreateResult, ExecutionKey, StatusChange, StatusUpdateResult
from execution_stream.domain.trace import TraceContext


class ExecutionStore(Protocol):
    """Where the steps keep executions: created once, read by key, changed by conditional updates."""

    async def create(self, execution: Execution) -> CreateResult: ...

    async def create_many(self, executions: Sequence[Execution]) -> list[CreateResult]: ...

    async def get(self, key: ExecutionKey) -> Execution | None: ...

    async def find(self, tenant_id: str, execution_id: str) -> Execution | None:
        """By tenant and execution id alone (eventually consistent)."""
        ...

    async def get_many(self, keys: Sequence[ExecutionKey]) -> dict[ExecutionKey, Execution]:
        """The stored executions of these keys (strongly consistent); a key not stored is absent."""
        ...

    async def update_status(
        self, key: ExecutionKey, change: StatusChange, plan_item_slug: str | None = None
    ) -> StatusUpdateResult: ...

    async def request_cancel(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        """Marks a dispatched or running execution asked to cancel (when, why), once: APPLIED with
        the execution afterwards, REFUSED with it as found, or NOT_FOUND."""
        ...

    async def replace_attempt(self, before: Execution, after: Execution) -> StatusUpdateResult:
        """Stores `after`, the execution's next attempt, if the stored one is still `before`'s
        attempt: APPLIED, else REFUSED with the execution as found."""
        ...

    async def record_attempts(self, execution: Execution, attempts: Sequence[Attempt]) -> None:
        """Stores the attempts list of an ended execution, unless it changed since it was read."""
        ...

    async def hold_report(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        """Keeps a runner's report on a pending execution (not waiting for its asset) until its
        `dispatched` mark: HELD (also when it is held already), else REFUSED with the stored execution
        (it is no longer pending, or holds too many), or NOT_FOUND."""
        ...

    async def held_reports(self, key: ExecutionKey) -> tuple[StatusChange, ...]:
        """The reports held on the execution, in their order (kept after its mark, for replays)."""
        ...

    async def complete_waiting(self, key: ExecutionKey, asset: Asset) -> Execution | None:
        """Stores the asset's fields on an execution that waits for its asset; returns the stored
        execution afterwards (None when there is none)."""
        ...


class AssetLookup(Protocol):
    def get(self, asset_id: str) -> Asset | None: ...


class GithubDispatcher(Protocol):
    async def dispatch(self, target: GithubWorkflowTarget) -> RunDetails | None:
        """Starts the workflow; the run it created, when GitHub says."""
        ...

    async def cancel_run(self, run: GithubRun) -> CancelOutcome: ...


class RunnerJobPublisher(Protocol):
    """Publishes a job for a topic-fed runner, with its trace context, and returns once the broker
    has it."""

    async def publish(self, job: DispatchedJob, trace: TraceContext) -> None: ...


class QueueView(Protocol):
    """Where users see the queue: notes taken without waiting, shown within about a second."""

    def queued(self, queued: Queued) -> None: ...

    def line_changed(self, tenant_id: str, runner: str, line: RunnerLine, limit: int) -> None: ...


class NoQueueView:
    def queued(self, queued: Queued) -> None:
        return None

    def line_changed(self, tenant_id: str, runner: str, line: RunnerLine, limit: int) -> None:
        return None


# Which tenants a timer acts on: those whose partitions this worker processes now.
TenantFilter = Callable[[str], bool]


def every_tenant(tenant: str) -> bool:
    return True
