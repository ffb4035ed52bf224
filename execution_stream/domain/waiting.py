"""Why a pending execution waits, and where it stands in its runner's queue (pure).

The worker stores `waiting_for_asset` on an execution whose trigger waits for its asset, and
`queue_index` with `queue_priority` (None: class 0) on one that entered its runner's queue because its
tenant was at capacity; per tenant and runner it publishes a QueueSnapshot with, per priority class,
the queue_index admitted next and how many wait. Its position is those ahead in its own class plus
every one waiting in a higher class: an estimate, as executions removed from the middle of a queue
leave holes counted until the head passes them, and aging lets a lower class's long-waiting heads
go before a higher class's.
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
    if index is None or snapshot is None:
        return NOT_WAITING
    priority = execution.queue_priority or 0
    classes = snapshot.class_queues()
    own = classes.get(priority)
    if own is None or own.head_index > index:
        # Not in the snapshot yet, or its class's head has passed it: admitted, being dispatched.
        return NOT_WAITING
    higher = sum(queue.queued for c, queue in classes.items() if c > priority)
    return Waiting(
        WaitingReason.CAPACITY,
        queue_position=index - own.head_index + 1 + higher,
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
