"""What can go wrong when a job is handed to its runner, in the service's own terms.

Adapters turn their transport's failures into these, so the pipeline decides on two kinds only:
`DispatchUnavailableError` (not now: pause and retry later, never dead-letter) and
`DispatchRefusedError` (never: fail the execution with the reason and dead-letter the record).

A dispatched GitHub workflow may come back as `RunDetails` (the run it created), and a run, as a
`GithubRun`, can be cancelled: the `CancelOutcome` says whether GitHub took the cancel or the run had
ended already.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from execution_stream.domain.backoff import backoff_seconds


class DispatchError(Exception):
    """A job could not be handed to its runner."""


class DispatchUnavailableError(DispatchError):
    """The runner could not be reached or kept failing after every retry: try again later.

    `retry_after` is the runner's own hint, in seconds, when it gave one.
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class DispatchRefusedError(DispatchError):
    """The runner refused the job for a reason that retrying will not heal.

    `status` is the HTTP status of the refusal when the runner answered one.
    """

    def __init__(self, status: int | None, reason: str) -> None:
        super().__init__(f"{status}: {reason}" if status is not None else reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class DispatchRetryPolicy:
    """When a job whose runner is unavailable is tried again: when the runner said (GitHub's
    Retry-After or rate-limit reset), else after a backoff that doubles with each attempt."""

    first_seconds: float
    max_seconds: float

    def delay(self, attempt: int, asked_seconds: float | None) -> float:
        if asked_seconds is not None:
            return max(1.0, asked_seconds)
        return backoff_seconds(attempt, first_seconds=self.first_seconds, max_seconds=self.max_seconds)


@dataclass(frozen=True)
class RunDetails:
    """What GitHub says of the run a dispatch created."""

    workflow_run_id: int
    html_url: str | None = None
    run_url: str | None = None


@dataclass(frozen=True)
class GithubRun:
    """A workflow run to act on: where it is and its id."""

    installation_id: str
    owner: str
    repo: str
    workflow_run_id: int


class CancelOutcome(StrEnum):
    """What became of a request to cancel a run."""

    REQUESTED = "requested"  # GitHub accepted the cancel (202)
    ALREADY_FINISHED = "already_finished"  # 409: the run had ended
