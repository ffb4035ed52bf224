"""Listing a tenant's executions newest first, on the GSI that answers the filter (access
patterns 1-4): a page of `limit` items and the key to go on from, never a Scan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_client import from_attribute_values, translate
from execution_stream.adapters.dynamodb_item_codec import execution_from_item
from execution_stream.domain.store import ExecutionPage, ExecutionQuery, PageKey, RepositoryError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

Items = list[dict[str, Any]]


async def list_executions(client: DynamoDBClient, table: str, query: ExecutionQuery) -> ExecutionPage:
    """Newest first; `next_key` is None exactly when no item follows (reads one extra)."""
    index = keys.index_for_filter(query.tenant_id, query.status, query.plan_item_slug)
    start = _start_key(query, index) if query.start_after is not None else None
    items = await _query(client, table, index, query.limit + 1, start)
    page = [execution_from_item(item) for item in items[: query.limit]]
    if len(items) <= query.limit:
        return ExecutionPage(page, None)
    last = items[query.limit - 1]
    return ExecutionPage(page, {name: str(last[name]) for name in index.page_key_names})


async def _query(
    client: DynamoDBClient, table: str, index: keys.IndexQuery, wanted: int, start: dict[str, Any] | None
) -> Items:
    """Up to `wanted` items, newest first. DynamoDB ends a response at 1 MB with a
    LastEvaluatedKey: the query goes on from it, so the result is short only at the end."""
    items: Items = []
    for _ in range(wanted):  # without a filter, every response holds at least one item
        request = list_request(table, index, wanted - len(items))
        if start is not None:
            request["ExclusiveStartKey"] = start
        try:
            response = await client.query(**request)
        except (ClientError, BotoCoreError) as error:
            raise translate(error, "list executions") from error
        items.extend(from_attribute_values(item) for item in response.get("Items", []))
        start = response.get("LastEvaluatedKey")
        if start is None or len(items) >= wanted:
            return items
    raise RepositoryError(f"list executions: fewer than {wanted} items after {wanted} queries")


def list_request(table: str, index: keys.IndexQuery, limit: int) -> dict[str, Any]:
    return {
        "TableName": table,
        "IndexName": index.index.value,
        "KeyConditionExpression": "#pk = :pk",
        "ExpressionAttributeNames": {"#pk": index.partition_key_name},
        "ExpressionAttributeValues": {":pk": {"S": index.partition_key_value}},
        "ScanIndexForward": False,
        "Limit": limit,
    }


def _start_key(query: ExecutionQuery, index: keys.IndexQuery) -> dict[str, Any]:
    start: PageKey = query.start_after or {}
    keys.check_page_key(start, query.tenant_id, index)
    return {name: {"S": value} for name, value in start.items()}
