"""What the service needs of the outside world, as protocols, and the errors adapters raise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from execution_stream.domain.models import Asset, Execution, ExecutionStatus


class RepositoryError(Exception):
    """The store refused a request for a reason that retrying will not heal."""


class RepositoryUnavailableError(RepositoryError):
    """The store could not be reached or kept throttling after every retry: try again later."""


class RepositoryAccessError(RepositoryUnavailableError):
    """The store refuses the service itself (its credentials, its permissions, a table that is gone
    or being restored): no record causes it, so records wait while an operator restores access."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidPageKeyError(ValueError):
    """A continuation key that does not belong to the query it is presented with."""


@dataclass(frozen=True)
class ExecutionKey:
    tenant_id: str
    jit_event_id: str
    execution_id: str

    @classmethod
    def of(cls, execution: Execution) -> ExecutionKey:
        return cls(execution.tenant_id, execution.jit_event_id, execution.execution_id)


@dataclass(frozen=True)
class CreateResult:
    execution: Execution
    created: bool


@dataclass(frozen=True)
class StatusChange:
    status: ExecutionStatus
    at: datetime
    has_findings: bool = False
    error: str | None = None
    # Set with `dispatched`: the moment the job runs out of time.
    deadline_at: datetime | None = None


class UpdateOutcome(StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    # A runner's report that came before the job's `dispatched` mark, kept on the item until then.
    HELD = "held"


@dataclass(frozen=True)
class StatusUpdateResult:
    outcome: UpdateOutcome
    previous_status: ExecutionStatus | None
    execution: Execution | None
    # The runners' reports held on the item, in their order, as the update found them.
    held_reports: tuple[StatusChange, ...] = ()

    @property
    def applied(self) -> bool:
        return self.outcome is UpdateOutcome.APPLIED


PageKey = Mapping[str, str]


@dataclass(frozen=True)
class ExecutionQuery:
    tenant_id: str
    status: ExecutionStatus | None = None
    plan_item_slug: str | None = None
    limit: int = 20
    start_after: PageKey | None = None


@dataclass(frozen=True)
class ExecutionPage:
    items: Sequence[Execution]
    next_key: PageKey | None


class ExecutionRepository(Protocol):
    async def create(self, execution: Execution) -> CreateResult: ...

    async def create_many(self, executions: Sequence[Execution]) -> list[CreateResult]: ...

    async def get(self, key: ExecutionKey) -> Execution | None: ...

    async def update_status(
        self, key: ExecutionKey, change: StatusChange, plan_item_slug: str | None = None
    ) -> StatusUpdateResult: ...

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

    async def list(self, query: ExecutionQuery) -> ExecutionPage: ...

    async def ping(self) -> None: ...


@dataclass(frozen=True)
class QueueSnapshot:
    """The worker's latest view of one tenant's queue for one runner (at most ~1 s behind it)."""

    tenant_id: str
    job_runner: str
    limit: int
    in_use: int
    head_index: int  # the queue_index of the next execution to be admitted
    queued: int
    version: int
    updated_at: str


class ExecutionReader(Protocol):
    """What the API reads besides listing: one execution by id, and runner queue snapshots."""

    async def find(self, tenant_id: str, execution_id: str) -> Execution | None: ...

    async def queue_snapshots(self, tenant_id: str, runners: frozenset[str]) -> dict[str, QueueSnapshot]:
        """The snapshots of `tenant_id`'s queues for `runners`, by runner; a missing one is absent."""
        ...
