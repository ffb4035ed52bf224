"""What the store answers: an execution's key, the results of writes and reads, and its errors.

The ports that use these live with their callers: `pipeline.ports.ExecutionStore` for the pipeline
steps, `api.ports.ExecutionReader` for the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from execution_stream.domain.models import CancelReason, Execution, ExecutionStatus, ExecutionStatusUpdate


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
    retryable: bool = False
    # The run at its runner (GitHub's at dispatch, a topic-fed runner's with its reports): stored
    # when given, kept when not.
    workflow_run_id: int | None = None
    html_url: str | None = None
    run_ref: str | None = None
    # With `canceled`: why, and (superseded) by which execution; `only_from` limits where it may
    # come from (a cancel of a pending execution must not cancel one its runner has now).
    cancel_reason: CancelReason | None = None
    superseded_by: str | None = None
    only_from: ExecutionStatus | None = None
    # A runner's report naming its attempt applies to that attempt only (a stale one is refused).
    attempt: int | None = None

    def of_attempt(self, execution: Execution) -> bool:
        return self.attempt is None or self.attempt == execution.attempt

    @classmethod
    def reported(cls, update: ExecutionStatusUpdate) -> StatusChange:
        """The change a runner's report asks for."""
        return cls(
            update.status,
            update.at,
            update.has_findings,
            update.error,
            retryable=update.retryable,
            html_url=update.html_url,
            run_ref=update.run_ref,
            attempt=update.attempt,
        )

    def report(self, key: ExecutionKey) -> ExecutionStatusUpdate:
        """This change as a report on the status topic (to be decided there, as a runner's is)."""
        return ExecutionStatusUpdate(
            tenant_id=key.tenant_id,
            jit_event_id=key.jit_event_id,
            execution_id=key.execution_id,
            status=self.status,
            has_findings=self.has_findings,
            error=self.error,
            at=self.at,
            retryable=self.retryable,
            html_url=self.html_url,
            run_ref=self.run_ref,
            attempt=self.attempt,
        )

    def run_fields(self) -> dict[str, int | str]:
        """The run reference it brings, by field name (the ones it does not know are left out)."""
        fields = {"workflow_run_id": self.workflow_run_id, "html_url": self.html_url, "run_ref": self.run_ref}
        return {name: value for name, value in fields.items() if value is not None}

    def cancel_fields(self) -> dict[str, str]:
        fields = {"cancel_reason": self.cancel_reason, "superseded_by": self.superseded_by}
        return {name: str(value) for name, value in fields.items() if value is not None}


class UpdateOutcome(StrEnum):
    APPLIED = "applied"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    # A runner's report that came before the job's `dispatched` mark, kept on the item until then.
    HELD = "held"
    # A retryable failure: the execution is pending again for its next attempt.
    RETRIED = "retried"


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


class QueueClass(NamedTuple):
    """One priority class of a runner's queue in a snapshot."""

    head_index: int  # the queue_index of the class's next execution to be admitted
    queued: int


@dataclass(frozen=True)
class QueueSnapshot:
    """The worker's latest view of one tenant's queue for one runner (at most ~1 s behind it)."""

    tenant_id: str
    job_runner: str
    limit: int
    in_use: int
    head_index: int  # class 0's queue_index of the next execution to be admitted
    queued: int  # in every class
    version: int
    updated_at: str
    # Per priority class; empty in a snapshot written before classes existed (all is class 0).
    classes: Mapping[int, QueueClass] = field(default_factory=dict)

    def class_queues(self) -> Mapping[int, QueueClass]:
        return self.classes or {0: QueueClass(self.head_index, self.queued)}
