"""Why a pending execution waits, and where it stands in its runner's queue (pure).

The worker stores `waiting_for_asset` on an execution whose trigger waits for its asset, and
`queue_index` on one that entered its runner's queue because its tenant was at capacity; per tenant
and runner it publishes a QueueSnapshot whose `head_index` is the queue_index admitted next.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from execution_stream.domain.models import Execution, ExecutionStatus
from execution_stream.domain.store import QueueSnapshot


class WaitingReason(StrEnum):
    ASSET = "asset"
    CAPACITY = "capacity"


@dataclass(frozen=True)
class Waiting:
    """A pending execution's wait: `reason` None when it is not known to wait (admitted, being
    dispatched, or no snapshot of its queue yet); the capacity figures only with CAPACITY."""

    reason: WaitingReason | None = None
    queue_position: int | None = None  # 1: the next one to be admitted
    limit: int | None = None
    in_use: int | None = None


NOT_WAITING = Waiting()


def waiting_of(execution: Execution, snapshot: QueueSnapshot | None) -> Waiting | None:
    """The wait of `execution` given its runner's queue snapshot; None unless it is pending."""
    if snapshot is not None and (snapshot.tenant_id, snapshot.job_runner) != (
        execution.tenant_id,
        execution.job_runner,
    ):
        raise ValueError("the snapshot is of another tenant's or another runner's queue")
    if execution.status is not ExecutionStatus.PENDING:
        return None
    if execution.waiting_for_asset is not None:
        return Waiting(WaitingReason.ASSET)
    index = execution.queue_index
    if index is None or snapshot is None or snapshot.head_index > index:
        # Not queued, or the head has passed it: admitted, its dispatch is under way.
        return NOT_WAITING
    return Waiting(
        WaitingReason.CAPACITY,
        queue_position=index - snapshot.head_index + 1,
        limit=snapshot.limit,
        in_use=snapshot.in_use,
    )


def runners_to_look_up(executions: Iterable[Execution]) -> frozenset[str]:
    """The runners whose snapshots decide the wait of some of `executions` (often none)."""
    return frozenset(
        execution.job_runner
        for execution in executions
        if execution.status is ExecutionStatus.PENDING
        and execution.waiting_for_asset is None
        and execution.queue_index is not None
    )
