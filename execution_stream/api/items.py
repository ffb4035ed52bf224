"""The executions as the API shows them: the stored item, and for pending ones why they wait.

`waiting_for_asset` and `queue_index` are the worker's bookkeeping: they are left out, and shown
as what they mean, `waiting_reason` and `queue_position` (plus `limit` and `in_use` of the queue
while it waits for capacity). The trigger's trace context (`traceparent`, `tracestate`) is for the
records the worker sends, and is left out too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from execution_stream.adapters.dynamodb_item_codec import execution_to_item
from execution_stream.api.ports import ExecutionReader
from execution_stream.domain.models import Execution
from execution_stream.domain.waiting import Waiting, runners_to_look_up, waiting_of

HIDDEN_FIELDS = ("waiting_for_asset", "queue_index", "queue_priority", "traceparent", "tracestate")


async def api_items(
    reader: ExecutionReader, tenant_id: str, executions: Sequence[Execution]
) -> list[dict[str, Any]]:
    """One BatchGetItem for the page's queue snapshots, and none when no execution is queued."""
    runners = runners_to_look_up(executions)
    snapshots = await reader.queue_snapshots(tenant_id, runners) if runners else {}
    return [api_item(e, waiting_of(e, snapshots.get(e.job_runner))) for e in executions]


def api_item(execution: Execution, waiting: Waiting | None) -> dict[str, Any]:
    item = execution_to_item(execution)
    for name in HIDDEN_FIELDS:
        item.pop(name, None)
    if waiting is not None:
        item.update(waiting_fields(waiting))
    return item


def waiting_fields(waiting: Waiting) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "waiting_reason": waiting.reason.value if waiting.reason is not None else None,
        "queue_position": waiting.queue_position,
    }
    if waiting.limit is not None and waiting.in_use is not None:
        fields.update(limit=waiting.limit, in_use=waiting.in_use)
    return fields
