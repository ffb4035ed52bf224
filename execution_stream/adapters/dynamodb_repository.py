"""The Executions table behind two ports, the pipeline's ExecutionStore and the API's ExecutionReader
(aiobotocore; never a Scan)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters import dynamodb_status
from execution_stream.adapters.dynamodb_client import (
    error_code,
    from_attribute_values,
    open_client,
    to_attribute_values,
    translate,
)
from execution_stream.adapters.dynamodb_item_codec import execution_from_item, execution_to_item
from execution_stream.adapters.dynamodb_listing import list_executions
from execution_stream.adapters.dynamodb_reads import DynamoDBExecutionReader
from execution_stream.domain.backoff import backoff_seconds
from execution_stream.domain.executions import apply_status
from execution_stream.domain.lifecycle import allowed_predecessors
from execution_stream.domain.models import Asset, Attempt, Execution
from execution_stream.domain.store import (
    CreateResult,
    ExecutionKey,
    ExecutionPage,
    ExecutionQuery,
    QueueSnapshot,
    RepositoryError,
    RepositoryUnavailableError,
    StatusChange,
    StatusUpdateResult,
    UpdateOutcome,
)
from execution_stream.domain.timestamps import format_timestamp
from execution_stream.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

_NOT_STORED = "attribute_not_exists(PK)"
BATCH_GET_KEYS = 100  # DynamoDB's limit for one BatchGetItem
UNPROCESSED_KEYS_ROUNDS = 4
# A module-level name: inside the class, `list` is the method.
Items = list[dict[str, Any]]


@asynccontextmanager
async def open_repository(settings: Settings) -> AsyncIterator[DynamoDBExecutionRepository]:
    async with open_client(settings) as client:
        yield DynamoDBExecutionRepository(
            client, settings.dynamodb_table, settings.dynamodb_write_concurrency
        )


class DynamoDBExecutionRepository:
    def __init__(self, client: DynamoDBClient, table: str, write_concurrency: int) -> None:
        self._client = client
        self._table = table
        self._write_concurrency = write_concurrency
        self._reads = DynamoDBExecutionReader(client, table)

    async def create(self, execution: Execution) -> CreateResult:
        """A conditional put; when the execution is stored already, the stored one is returned."""
        try:
            item = to_attribute_values(execution_to_item(execution))
        except (ArithmeticError, TypeError, ValueError) as error:
            # e.g. a number of more than 38 digits in additional_attributes: DynamoDB cannot hold it.
            raise RepositoryError(f"create execution: the item cannot be stored: {error!r}") from error
        try:
            await self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=_NOT_STORED,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return CreateResult(await self._stored(error, ExecutionKey.of(execution)), created=False)
            raise translate(error, "create execution") from error
        except BotoCoreError as error:
            raise translate(error, "create execution") from error
        return CreateResult(execution, created=True)

    async def create_many(self, executions: Sequence[Execution]) -> list[CreateResult]:
        """Concurrent conditional puts; an execution stored already (or twice here) is reported.

        Not TransactWriteItems: a transaction fails whole on one existing item, costs twice the
        write capacity, and moto's emulation copies the whole table per item.
        """
        unique = {ExecutionKey.of(e): e for e in reversed(executions)}
        limit = asyncio.Semaphore(self._write_concurrency)

        async def create(execution: Execution) -> tuple[ExecutionKey, CreateResult]:
            async with limit:
                return ExecutionKey.of(execution), await self.create(execution)

        created = dict(await asyncio.gather(*(create(e) for e in unique.values())))
        seen: set[ExecutionKey] = set()
        results = []
        for execution in executions:
            key = ExecutionKey.of(execution)
            first = created[key]
            results.append(CreateResult(first.execution, first.created and key not in seen))
            seen.add(key)
        return results

    async def get(self, key: ExecutionKey) -> Execution | None:
        item = await self._item(key)
        return execution_from_item(item) if item is not None else None

    async def get_many(self, keys: Sequence[ExecutionKey]) -> dict[ExecutionKey, Execution]:
        """Consistent BatchGetItems of up to 100 distinct keys each, in parallel."""
        distinct = list(dict.fromkeys(keys))
        chunks = [
            distinct[start : start + BATCH_GET_KEYS] for start in range(0, len(distinct), BATCH_GET_KEYS)
        ]
        found: dict[ExecutionKey, Execution] = {}
        for items in await asyncio.gather(*(self._batch_get(chunk) for chunk in chunks)):
            for item in items:
                execution = execution_from_item(item)
                found[ExecutionKey.of(execution)] = execution
        return found

    async def _batch_get(self, chunk: Sequence[ExecutionKey]) -> Items:
        """Keys DynamoDB leaves unprocessed (it was throttled) are asked for again after a short
        backoff; still unprocessed after that, the read is unavailable and the caller pauses."""
        request = {self._table: {"Keys": [_primary_key(key) for key in chunk], "ConsistentRead": True}}
        items: Items = []
        for attempt in range(UNPROCESSED_KEYS_ROUNDS):
            if attempt:
                await asyncio.sleep(
                    backoff_seconds(attempt - 1, first_seconds=0.05, max_seconds=1.0, draw=random.random())
                )
            try:
                response = await self._client.batch_get_item(RequestItems=request)  # type: ignore[arg-type]
            except (ClientError, BotoCoreError) as error:
                raise translate(error, "get executions") from error
            items.extend(from_attribute_values(item) for item in response["Responses"].get(self._table, []))
            request = response.get("UnprocessedKeys") or {}  # type: ignore[assignment]
            if not request:
                return items
        raise RepositoryUnavailableError(
            f"get executions: keys unprocessed after {UNPROCESSED_KEYS_ROUNDS} rounds"
        )

    async def held_reports(self, key: ExecutionKey) -> tuple[StatusChange, ...]:
        item = await self._item(key)
        return dynamodb_status.held_reports_of(item) if item is not None else ()

    async def _item(self, key: ExecutionKey) -> dict[str, Any] | None:
        try:
            response = await self._client.get_item(
                TableName=self._table, Key=_primary_key(key), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "get execution") from error
        item = response.get("Item")
        return from_attribute_values(item) if item else None

    async def update_status(
        self, key: ExecutionKey, change: StatusChange, plan_item_slug: str | None = None
    ) -> StatusUpdateResult:
        """One conditional UpdateItem; without the plan item slug (for GSI4PK) one read first."""
        if plan_item_slug is None or not allowed_predecessors(change.status):
            stored = await self.get(key)
            if stored is None:
                return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
            if not allowed_predecessors(change.status):
                return StatusUpdateResult(UpdateOutcome.REFUSED, stored.status, stored)
            plan_item_slug = plan_item_slug or stored.plan_item_slug
        update = dynamodb_status.status_update(key, change, plan_item_slug)
        old_item, applied = await self._update_item(key, "ALL_OLD", update, "update execution status")
        if old_item is None:
            return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
        old, held = execution_from_item(old_item), dynamodb_status.held_reports_of(old_item)
        if not applied:
            return StatusUpdateResult(UpdateOutcome.REFUSED, old.status, old, held)
        updated = apply_status(old, change.status, change.at, change.has_findings, change.error)
        fields: dict[str, Any] = {**change.run_fields(), **change.cancel_fields()}
        if change.deadline_at is not None:
            fields["deadline_at"] = format_timestamp(change.deadline_at)
        updated = Execution.model_validate({**updated.model_dump(), **fields}) if fields else updated
        return StatusUpdateResult(UpdateOutcome.APPLIED, old.status, updated, held)

    async def request_cancel(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        """Marks a dispatched or running execution asked to cancel, once: APPLIED with the item
        afterwards, else REFUSED with the item as found (not under way, or asked already)."""
        request = dynamodb_status.cancel_request(change)
        item, applied = await self._update_item(key, "ALL_NEW", request, "request a cancel")
        if item is None:
            return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
        stored = execution_from_item(item)
        outcome = UpdateOutcome.APPLIED if applied else UpdateOutcome.REFUSED
        return StatusUpdateResult(outcome, stored.status, stored)

    async def replace_attempt(self, before: Execution, after: Execution) -> StatusUpdateResult:
        """Stores `after` (the execution's next attempt) over the item, if the item is still the
        attempt `before` was read as: same status, dispatch time and attempt number."""
        try:
            await self._client.put_item(
                TableName=self._table,
                Item=to_attribute_values(execution_to_item(after)),
                ConditionExpression="#status = :status AND dispatched_at = :dispatched AND "
                + dynamodb_status.same_attempt(before.attempt),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": {"S": before.status.value},
                    ":dispatched": {"S": before.dispatched_at or ""},
                    ":attempt": {"N": str(before.attempt)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise translate(error, "retry an execution") from error
            seen = await self._seen_item(error, ExecutionKey.of(before))
            stored = execution_from_item(seen) if seen is not None else None
            return StatusUpdateResult(UpdateOutcome.REFUSED, stored.status if stored else None, stored)
        except BotoCoreError as error:
            raise translate(error, "retry an execution") from error
        return StatusUpdateResult(UpdateOutcome.APPLIED, before.status, after)

    async def record_attempts(self, execution: Execution, attempts: Sequence[Attempt]) -> None:
        """Writes the attempts list of an ended execution, unless it grew since it was read."""
        update = {
            "UpdateExpression": "SET attempts = :attempts",
            "ConditionExpression": "attribute_exists(PK) AND size(attempts) = :count",
            "ExpressionAttributeValues": {
                ":attempts": to_attribute_values({"a": [a.model_dump(exclude_none=True) for a in attempts]})[
                    "a"
                ],
                ":count": {"N": str(len(execution.attempts or ()))},
            },
        }
        await self._update_item(ExecutionKey.of(execution), "ALL_NEW", update, "record the attempts")

    async def hold_report(self, key: ExecutionKey, change: StatusChange) -> StatusUpdateResult:
        """One conditional UpdateItem appending the report; a report held already is HELD again."""
        holding = dynamodb_status.report_holding(change)
        item, _ = await self._update_item(key, "ALL_NEW", holding, "hold a status report")
        if item is None:
            return StatusUpdateResult(UpdateOutcome.NOT_FOUND, None, None)
        stored, held = execution_from_item(item), dynamodb_status.held_reports_of(item)
        outcome = UpdateOutcome.HELD if dynamodb_status.holds(item, change) else UpdateOutcome.REFUSED
        return StatusUpdateResult(outcome, stored.status, stored, held)

    async def complete_waiting(self, key: ExecutionKey, asset: Asset) -> Execution | None:
        completion = dynamodb_status.asset_completion(asset)
        item, _ = await self._update_item(key, "ALL_NEW", completion, "complete a waiting execution")
        return execution_from_item(item) if item is not None else None

    async def _update_item(
        self, key: ExecutionKey, returns: Literal["ALL_OLD", "ALL_NEW"], update: dict[str, Any], action: str
    ) -> tuple[dict[str, Any] | None, bool]:
        """One conditional UpdateItem: the item it returns and True, or, when its condition failed,
        the item the condition saw (None when there is none) and False."""
        try:
            response = await self._client.update_item(
                TableName=self._table,
                Key=_primary_key(key),
                ReturnValues=returns,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **update,
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise translate(error, action) from error
            return await self._seen_item(error, key), False
        except BotoCoreError as error:
            raise translate(error, action) from error
        return from_attribute_values(response["Attributes"]), True

    async def _seen_item(self, error: ClientError, key: ExecutionKey) -> dict[str, Any] | None:
        """The item a failed condition saw, or (endpoints that do not return it) a fresh read."""
        old: Any = error.response.get("Item")
        return from_attribute_values(old) if old else await self._item(key)

    async def _stored(self, error: ClientError, key: ExecutionKey) -> Execution:
        item = await self._seen_item(error, key)
        if item is None:
            raise RepositoryError(f"execution {key.execution_id} vanished while it was being written")
        return execution_from_item(item)

    async def list(self, query: ExecutionQuery) -> ExecutionPage:
        return await list_executions(self._client, self._table, query)

    async def find(self, tenant_id: str, execution_id: str) -> Execution | None:
        return await self._reads.find(tenant_id, execution_id)

    async def queue_snapshots(self, tenant_id: str, runners: frozenset[str]) -> dict[str, QueueSnapshot]:
        return await self._reads.queue_snapshots(tenant_id, runners)

    async def ping(self) -> None:
        try:
            await self._client.describe_table(TableName=self._table)
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "describe table") from error


def _primary_key(key: ExecutionKey) -> dict[str, Any]:
    return {
        keys.PK: {"S": keys.partition_key(key.tenant_id)},
        keys.SK: {"S": keys.sort_key(key.jit_event_id, key.execution_id)},
    }
