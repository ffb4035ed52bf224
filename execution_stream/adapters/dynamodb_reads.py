"""The API's reads besides listing, which DynamoDBExecutionRepository answers through this reader.

One execution by tenant and id is one Query on GSI5 (its partition key names both; an index has
no GetItem). Runner queue snapshots are items of the tenant's partition, `SK = QUEUE#<runner>`,
read with BatchGetItem. Never a Scan, never a read per listed item.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_client import from_attribute_values, open_client, translate
from execution_stream.adapters.dynamodb_item_codec import execution_from_item
from execution_stream.domain.models import Execution
from execution_stream.domain.priority_queues import checked_priority
from execution_stream.domain.store import (
    QueueClass,
    QueueSnapshot,
    RepositoryError,
    RepositoryUnavailableError,
)
from execution_stream.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import KeysAndAttributesUnionTypeDef

logger = logging.getLogger(__name__)

# BatchGetItem takes at most 100 keys; a page of at most 100 executions names fewer runners.
MAX_BATCH_KEYS = 100
# Keys DynamoDB leaves unprocessed (throttling) are asked again, backing off, this many times.
BATCH_ATTEMPTS = 5
BATCH_BACKOFF_SECONDS = 0.05


@asynccontextmanager
async def open_reader(settings: Settings) -> AsyncIterator[DynamoDBExecutionReader]:
    async with open_client(settings) as client:
        yield DynamoDBExecutionReader(client, settings.dynamodb_table)


class DynamoDBExecutionReader:
    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    async def find(self, tenant_id: str, execution_id: str) -> Execution | None:
        """Eventually consistent (a GSI): an execution stored a moment ago may not be found yet."""
        index, attribute = keys.LOOKUP_INDEX_KEY_ATTRIBUTE
        try:
            response = await self._client.query(
                TableName=self._table,
                IndexName=index.value,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": attribute},
                ExpressionAttributeValues={":pk": {"S": keys.gsi5_pk(tenant_id, execution_id)}},
            )
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "find execution") from error
        items = response.get("Items", [])
        if len(items) > 1:
            raise RepositoryError(f"find execution: {len(items)} items hold execution {execution_id}")
        return execution_from_item(from_attribute_values(items[0])) if items else None

    async def queue_snapshots(self, tenant_id: str, runners: frozenset[str]) -> dict[str, QueueSnapshot]:
        # The sort key is mapped back to its runner, never split: runner names may contain '#'.
        wanted = {keys.queue_snapshot_sort_key(runner): runner for runner in sorted(runners)}
        sort_keys = list(wanted)
        snapshots: dict[str, QueueSnapshot] = {}
        for start in range(0, len(sort_keys), MAX_BATCH_KEYS):
            for item in await self._batch_get(tenant_id, sort_keys[start : start + MAX_BATCH_KEYS]):
                snapshot = _snapshot(item, tenant_id, wanted.get(str(item.get(keys.SK))))
                if snapshot is not None:
                    snapshots[snapshot.job_runner] = snapshot
        return snapshots

    async def _batch_get(self, tenant_id: str, sort_keys: Sequence[str]) -> list[dict[str, Any]]:
        partition = keys.partition_key(tenant_id)
        pending: KeysAndAttributesUnionTypeDef = {
            "Keys": [{keys.PK: {"S": partition}, keys.SK: {"S": sort_key}} for sort_key in sort_keys]
        }
        found: list[dict[str, Any]] = []
        for attempt in range(BATCH_ATTEMPTS):
            if attempt:
                await asyncio.sleep(BATCH_BACKOFF_SECONDS * 2**attempt)
            try:
                response = await self._client.batch_get_item(RequestItems={self._table: pending})
            except (ClientError, BotoCoreError) as error:
                raise translate(error, "read queue snapshots") from error
            found.extend(
                from_attribute_values(item) for item in response.get("Responses", {}).get(self._table, [])
            )
            unprocessed = response.get("UnprocessedKeys", {}).get(self._table)
            if not unprocessed or not unprocessed.get("Keys"):
                return found
            pending = unprocessed
        raise RepositoryUnavailableError(
            f"read queue snapshots: keys still unprocessed after {BATCH_ATTEMPTS} attempts"
        )


def _snapshot(item: Mapping[str, Any], tenant_id: str, runner: str | None) -> QueueSnapshot | None:
    """The snapshot an item holds; a malformed one is logged and ignored (its executions show no
    position rather than the listing failing)."""
    try:
        snapshot = QueueSnapshot(
            tenant_id=str(item["tenant_id"]),
            job_runner=str(item["job_runner"]),
            limit=int(item["limit"]),
            in_use=int(item["in_use"]),
            head_index=int(item["head_index"]),
            queued=int(item["queued"]),
            version=int(item["version"]),
            updated_at=str(item["updated_at"]),
            classes=_classes(item.get("classes", {})),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as error:
        logger.warning("ignoring a malformed queue snapshot %r: %r", item.get(keys.SK), error)
        return None
    if (snapshot.tenant_id, snapshot.job_runner) != (tenant_id, runner):
        logger.warning(
            "ignoring a queue snapshot whose attributes disagree with its key %r", item.get(keys.SK)
        )
        return None
    return snapshot


def _classes(attribute: Mapping[str, Any]) -> dict[int, QueueClass]:
    """Per priority class; a snapshot written before classes existed has none (all is class 0)."""
    return {
        checked_priority(int(priority)): QueueClass(int(queue["head_index"]), int(queue["queued"]))
        for priority, queue in attribute.items()
    }
