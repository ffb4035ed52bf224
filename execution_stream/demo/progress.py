"""The demo's live view: its executions' status changes as `execution-events` tells them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from execution_stream.demo.seed import DemoJob
from execution_stream.domain.lifecycle import TERMINAL_STATUSES
from execution_stream.domain.models import ExecutionEvent, ExecutionStatus

_SHOWN_ID = 8
_RUNNER_WIDTH = 14


@dataclass
class Progress:
    """The last status of each of the demo's executions, by its trigger's jit_event_id."""

    jobs: Sequence[DemoJob]
    latest: dict[str, ExecutionEvent] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._planned = {job.jit_event_id: job for job in self.jobs}
        self._tenant_width = max((len(job.tenant_id) for job in self.jobs), default=0)

    def observe(self, value: bytes | None) -> str | None:
        """The line for a change of one of the demo's executions; None for any other record, and for
        a change already seen (a redelivered event)."""
        event = _event(value)
        if event is None or event.jit_event_id not in self._planned:
            return None
        known = self.latest.get(event.jit_event_id)
        if known is not None and (known.status in TERMINAL_STATUSES or known.status is event.status):
            return None
        self.latest[event.jit_event_id] = event
        return self.line(event)

    def line(self, event: ExecutionEvent) -> str:
        change = event.status.value
        if event.previous_status is not None:
            change = f"{event.previous_status.value} -> {change}"
        error = f"  ({event.error})" if event.error else ""
        return (
            f"{event.tenant_id:<{self._tenant_width}}  {event.execution_id[:_SHOWN_ID]}…  "
            f"{event.job_runner:<{_RUNNER_WIDTH}}  {change}{error}"
        )

    def ended(self) -> bool:
        return not self.unfinished()

    def unfinished(self) -> list[DemoJob]:
        return [job for job in self.jobs if self._status(job) not in TERMINAL_STATUSES]

    def describe_unfinished(self) -> str:
        return ", ".join(
            f"{job.tenant_id} {job.job_runner} jit_event_id={job.jit_event_id} "
            f"({status.value if (status := self._status(job)) else 'no event'})"
            for job in self.unfinished()
        )

    def final_statuses(self) -> dict[str, tuple[str, ExecutionStatus]]:
        """execution_id -> (tenant_id, its status), of every execution seen."""
        return {e.execution_id: (e.tenant_id, e.status) for e in self.latest.values()}

    def counts(self) -> str:
        """'4 completed, 2 failed': the final statuses, in the lifecycle's order."""
        counted = Counter(event.status for event in self.latest.values())
        return ", ".join(f"{counted[s]} {s.value}" for s in ExecutionStatus if counted[s])

    def _status(self, job: DemoJob) -> ExecutionStatus | None:
        event = self.latest.get(job.jit_event_id)
        return event.status if event is not None else None


def _event(value: bytes | None) -> ExecutionEvent | None:
    try:
        return ExecutionEvent.model_validate_json(value or b"")
    except ValidationError:
        return None
