"""The queue as users see it, written to the Executions table in the background.

The allocator notes, without waiting, where an execution entered its runner's queue and where each
runner line stands; this writer flushes them every `interval` seconds: `queue_index` on the pending
item, and one snapshot item per tenant and runner (`PK = TENANT#<tenant>`, `SK = QUEUE#<runner>`,
no GSI keys) written only over an older version. Notes are advice for readers: a crash may lose the
last second of them, and the next change of the line writes its snapshot again. With priority
classes, `queue_priority` goes next to `queue_index`, and the snapshot's `classes` map holds, per
class ("0".."9"), `head_index` and `queued`; `head_index` and `queued` stay class 0's head and the
total, as a snapshot had them before classes existed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_client import error_code
from execution_stream.domain.allocation import ClassQueue, Queued, RunnerLine
from execution_stream.domain.models import KEY_SEPARATOR
from execution_stream.domain.timestamps import format_timestamp

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

logger = logging.getLogger(__name__)
QUEUE_PREFIX = "QUEUE"


class DynamoDBQueueView:
    def __init__(
        self, client: DynamoDBClient, table: str, interval_seconds: float, concurrency: int, max_notes: int
    ) -> None:
        self._client, self._table = client, table
        self._interval, self._max_notes = interval_seconds, max_notes
        self._limit = asyncio.Semaphore(concurrency)
        self._queued: OrderedDict[str, Queued] = OrderedDict()
        self._lines: dict[tuple[str, str], tuple[RunnerLine, int]] = {}
        self._task: asyncio.Task[None] | None = None

    def queued(self, queued: Queued) -> None:
        self._queued[queued.execution_id] = queued
        while len(self._queued) > self._max_notes:
            self._queued.popitem(last=False)  # bounded: the oldest notes give way

    def line_changed(self, tenant_id: str, runner: str, line: RunnerLine, limit: int) -> None:
        self._lines[(tenant_id, runner)] = (line, limit)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="queue-view")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                logger.warning(
                    "writing the queue view failed; next try in %.1fs", self._interval, exc_info=True
                )

    async def flush(self) -> None:
        queued, self._queued = list(self._queued.values()), OrderedDict()
        lines, self._lines = self._lines, {}
        writes = [self._write_index(q) for q in queued]
        writes += [self._write_line(t, r, line, limit) for (t, r), (line, limit) in lines.items()]
        failures = [r for r in await asyncio.gather(*writes, return_exceptions=True) if r is not None]
        if failures:
            for q in queued:
                self._queued.setdefault(q.execution_id, q)
            for (t, r), value in lines.items():
                self._lines.setdefault((t, r), value)
            raise failures[0]

    async def _write_index(self, queued: Queued) -> None:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {
                keys.PK: {"S": keys.partition_key(queued.tenant_id)},
                keys.SK: {"S": keys.sort_key(queued.jit_event_id, queued.execution_id)},
            },
            "UpdateExpression": "SET queue_index = :index, queue_priority = :priority",
            "ConditionExpression": "attribute_exists(PK) AND #status = :pending",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":index": {"N": str(queued.index)},
                ":priority": {"N": str(queued.priority)},
                ":pending": {"S": "pending"},
            },
        }
        await self._conditional(self._client.update_item, request)

    async def _write_line(self, tenant_id: str, runner: str, line: RunnerLine, limit: int) -> None:
        item = {
            keys.PK: {"S": keys.partition_key(tenant_id)},
            keys.SK: {"S": f"{QUEUE_PREFIX}{KEY_SEPARATOR}{runner}"},
            "tenant_id": {"S": tenant_id},
            "job_runner": {"S": runner},
            "limit": {"N": str(limit)},
            "in_use": {"N": str(line.in_use)},
            "head_index": {"N": str(line.head)},
            "queued": {"N": str(line.queued)},
            "version": {"N": str(line.version)},
            "updated_at": {"S": format_timestamp(datetime.now(UTC))},
            "classes": {"M": _class_attributes(line)},
        }
        request: dict[str, Any] = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(version) OR version < :version",
            "ExpressionAttributeValues": {":version": {"N": str(line.version)}},
        }
        await self._conditional(self._client.put_item, request)

    async def _conditional(self, call: Any, request: dict[str, Any]) -> None:
        async with self._limit:
            try:
                await call(**request)
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise


def _class_attributes(line: RunnerLine) -> dict[str, Any]:
    classes = line.classes or {0: ClassQueue(line.head, line.tail, line.queued)}
    return {
        str(priority): {"M": {"head_index": {"N": str(queue.head)}, "queued": {"N": str(queue.queued)}}}
        for priority, queue in classes.items()
    }
