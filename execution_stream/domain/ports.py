"""What the service needs of the outside world, as protocols, and the errors adapters raise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from execution_stream.domain.models import Execution, ExecutionStatus


class RepositoryError(Exception):
    """The store refused a request for a reason that retrying will not heal."""


class RepositoryUnavailableError(RepositoryError):
    """The store could not be reached or kept throttling after every retry: try again later."""


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


class UpdateOutcome(StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class StatusUpdateResult:
    outcome: UpdateOutcome
    previous_status: ExecutionStatus | None
    execution: Execution | None

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

    async def list(self, query: ExecutionQuery) -> ExecutionPage: ...

    async def ping(self) -> None: ...
