"""What can go wrong when a job is handed to its runner, in the service's own terms.

Adapters turn their transport's failures into these, so the pipeline decides on two kinds only:
`DispatchUnavailableError` (not now: pause and retry later, never dead-letter) and
`DispatchRefusedError` (never: fail the execution with the reason and dead-letter the record).
"""

from __future__ import annotations


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
