"""Retrying an execution whose runner failed for a reason of its own (pure).

A runner reports `failed` with `retryable: true` when the failure is the infrastructure's (the
runner died, a timeout before the job started). The execution goes back to `pending` holding its
slot, with the ended attempt kept in `attempts`, and is dispatched again after a backoff, until
`max_attempts` attempts in all; the last one's failure is final and says so. Its id never changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from execution_stream.domain.backoff import backoff_seconds
from execution_stream.domain.models import Attempt, Execution, ExecutionStatus
from execution_stream.domain.store import StatusChange
from execution_stream.domain.timestamps import format_timestamp, parse_timestamp

RETRYABLE_FROM = frozenset({ExecutionStatus.DISPATCHED, ExecutionStatus.RUNNING})
# What a dispatch set on the item, cleared for the next one.
_PER_DISPATCH = {
    "dispatched_at": None,
    "dispatched_at_ts": None,
    "registered_at": None,
    "registered_at_ts": None,
    "deadline_at": None,
    "workflow_run_id": None,
    "html_url": None,
    "run_ref": None,
}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    first_seconds: float
    max_seconds: float

    def delay_seconds(self, attempt: int) -> float:
        """The wait before dispatching attempt `attempt` + 1 (attempt counts from 1)."""
        return backoff_seconds(attempt - 1, first_seconds=self.first_seconds, max_seconds=self.max_seconds)

    def retries(self, execution: Execution, change: StatusChange) -> bool:
        """Whether the change is a failure to retry: retryable, from a dispatch under way, with an
        attempt left, and no cancel asked for."""
        return (
            change.status is ExecutionStatus.FAILED
            and change.retryable
            and execution.status in RETRYABLE_FROM
            and execution.attempt < self.max_attempts
            and execution.cancel_requested_at is None
        )

    def final_change(self, execution: Execution, change: StatusChange) -> StatusChange:
        """A retryable failure not retried: of one asked to cancel, a cancel (the cancel wins);
        of the last attempt, a failure that says it was the last; else as reported (one not under
        way yet is held until its dispatch mark, and decided then)."""
        if change.status is not ExecutionStatus.FAILED or not change.retryable:
            return change
        if execution.cancel_requested_at is not None:
            return replace(change, status=ExecutionStatus.CANCELED)
        if execution.attempt < self.max_attempts:
            return change
        error = change.error or "retryable failure"
        return replace(change, error=f"attempt {execution.attempt} of {self.max_attempts} failed: {error}")


NO_RETRIES = RetryPolicy(max_attempts=1, first_seconds=1.0, max_seconds=1.0)


def ended_attempt(execution: Execution, change: StatusChange) -> Attempt:
    """The execution's current attempt as `change` ends it."""
    return Attempt(
        number=execution.attempt,
        status=change.status,
        dispatched_at=execution.dispatched_at,
        registered_at=execution.registered_at,
        ended_at=format_timestamp(change.at),
        error=change.error,
        retryable=change.retryable,
        workflow_run_id=change.workflow_run_id or execution.workflow_run_id,
        html_url=change.html_url or execution.html_url,
        run_ref=change.run_ref or execution.run_ref,
    )


def retried(execution: Execution, change: StatusChange) -> Execution:
    """The execution pending again for its next attempt, the ended one kept, the failure's error
    shown while it waits."""
    if change.status is not ExecutionStatus.FAILED or execution.status not in RETRYABLE_FROM:
        raise ValueError(f"only a failure of a dispatched or running execution is retried, not {change}")
    attempts = [*(execution.attempts or ()), ended_attempt(execution, change)]
    return execution.model_copy(
        update={
            **_PER_DISPATCH,
            "status": ExecutionStatus.PENDING,
            "attempt": execution.attempt + 1,
            "attempts": attempts,
            "error": change.error,
            "has_findings": False,
        }
    )


def with_final_attempt(execution: Execution) -> list[Attempt] | None:
    """The attempts of a retried execution that has ended, its last one added (None for one that
    ran once, or whose last attempt is listed already)."""
    attempts = execution.attempts
    if not attempts or attempts[-1].number >= execution.attempt or execution.completed_at is None:
        return None
    ended = StatusChange(execution.status, parse_timestamp(execution.completed_at), error=execution.error)
    final = ended_attempt(execution, ended)
    return [*attempts, final]
