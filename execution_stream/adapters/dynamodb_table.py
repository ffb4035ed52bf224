"""Creates the Executions table with its five GSIs (the seed's key scheme plus GSI5); safe to run twice.

A table that exists with the same keys but lacks an index (GSI5, on tables created before it) gets
it added by UpdateTable, and init waits until every index is ACTIVE (DynamoDB backfills a new index
from the items that carry its key). boto3 is blocking, which is harmless here: this runs once, from
`init`, before any traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

# How long init waits for a new index to become ACTIVE (a backfill of a big table takes long; init
# can be run again to wait more), and how often it looks.
INDEX_WAIT_SECONDS = 3600.0
INDEX_POLL_SECONDS = 2.0


class TableSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class TableCreated:
    name: str
    created: bool
    indexes_added: tuple[str, ...] = ()


def table_definition(table_name: str) -> dict[str, Any]:
    lookup_index, lookup_key = keys.LOOKUP_INDEX_KEY_ATTRIBUTE
    attributes = {keys.PK, keys.SK, lookup_key} | {
        name for _, pk, sk in keys.GSI_KEY_ATTRIBUTES for name in (pk, sk)
    }
    listing = [_index(str(index), _key_schema(pk, sk)) for index, pk, sk in keys.GSI_KEY_ATTRIBUTES]
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in sorted(attributes)
        ],
        "KeySchema": _key_schema(keys.PK, keys.SK),
        "GlobalSecondaryIndexes": [*listing, _index(str(lookup_index), _key_schema(lookup_key))],
    }


def _index(name: str, key_schema: list[dict[str, str]]) -> dict[str, Any]:
    return {"IndexName": name, "KeySchema": key_schema, "Projection": {"ProjectionType": "ALL"}}


def _key_schema(partition: str, sort: str | None = None) -> list[dict[str, str]]:
    schema = [{"AttributeName": partition, "KeyType": "HASH"}]
    if sort is not None:
        schema.append({"AttributeName": sort, "KeyType": "RANGE"})
    return schema


def blocking_client(settings: Settings) -> DynamoDBClient:
    config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url, config=config)


def create_table(settings: Settings) -> TableCreated:
    client = blocking_client(settings)
    definition = table_definition(settings.dynamodb_table)
    where = settings.dynamodb_endpoint_url or "AWS"
    try:
        try:
            client.create_table(**definition)
            created = True
        except client.exceptions.ResourceInUseException:
            created = False
        client.get_waiter("table_exists").wait(
            TableName=settings.dynamodb_table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        description = client.describe_table(TableName=settings.dynamodb_table)["Table"]
        _check_matches(description, definition)
        added = _add_missing_indexes(client, description, definition)
        _wait_until_indexes_active(client, definition)
    except (BotoCoreError, ClientError) as error:
        raise TableSetupError(f"DynamoDB at {where}: {error}") from error
    return TableCreated(settings.dynamodb_table, created, added)


def _check_matches(description: Any, definition: dict[str, Any]) -> None:
    """The table's keys and every index it has of ours are as defined (missing ones are added)."""
    wanted = {index["IndexName"]: _shape(index) for index in definition["GlobalSecondaryIndexes"]}
    found = {name: _shape(index) for name, index in _indexes(description).items()}
    if description["KeySchema"] != definition["KeySchema"] or any(
        name in found and found[name] != shape for name, shape in wanted.items()
    ):
        raise TableSetupError(
            f"table {definition['TableName']} exists with another key schema or indexes; "
            "it was left unchanged"
        )


def _shape(index: Any) -> tuple[Any, Any]:
    """What readers rely on: the keys, and that every attribute is projected."""
    return index["KeySchema"], index.get("Projection", {}).get("ProjectionType")


def _indexes(description: Any) -> dict[str, Any]:
    return {index["IndexName"]: index for index in description.get("GlobalSecondaryIndexes", [])}


def _add_missing_indexes(
    client: DynamoDBClient, description: Any, definition: dict[str, Any]
) -> tuple[str, ...]:
    """One UpdateTable per missing index (DynamoDB creates one index per request)."""
    found = _indexes(description)
    missing = [i for i in definition["GlobalSecondaryIndexes"] if i["IndexName"] not in found]
    for index in missing:
        _wait_until_table_active(client, definition["TableName"])
        create = dict(index)
        throughput = _provisioned_throughput(description)
        if throughput is not None:
            create["ProvisionedThroughput"] = throughput
        request: dict[str, Any] = {
            "TableName": definition["TableName"],
            "AttributeDefinitions": _attribute_definitions(description, definition),
            "GlobalSecondaryIndexUpdates": [{"Create": create}],
        }
        try:
            client.update_table(**request)
        except ClientError:
            # Another init may have asked for it at the same moment: then it is there now.
            if index["IndexName"] not in _indexes(_describe(client, definition["TableName"])):
                raise
    return tuple(index["IndexName"] for index in missing)


def _attribute_definitions(description: Any, definition: dict[str, Any]) -> list[Any]:
    """The table's own definitions and ours: some endpoints replace the list instead of adding."""
    merged = {a["AttributeName"]: a for a in description.get("AttributeDefinitions", [])}
    merged.update({a["AttributeName"]: a for a in definition["AttributeDefinitions"]})
    return [merged[name] for name in sorted(merged)]


def _provisioned_throughput(description: Any) -> dict[str, int] | None:
    """A provisioned table's new index needs its own capacity: the table's is reused."""
    if description.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST":
        return None
    throughput = description.get("ProvisionedThroughput") or {}
    read, write = throughput.get("ReadCapacityUnits"), throughput.get("WriteCapacityUnits")
    if not read or not write:
        return None
    return {"ReadCapacityUnits": read, "WriteCapacityUnits": write}


def _describe(client: DynamoDBClient, table_name: str) -> Any:
    return client.describe_table(TableName=table_name)["Table"]


def _wait_until_table_active(client: DynamoDBClient, table_name: str) -> None:
    _poll(client, table_name, lambda table: table.get("TableStatus") == "ACTIVE", "the table")


def _wait_until_indexes_active(client: DynamoDBClient, definition: dict[str, Any]) -> None:
    names = [index["IndexName"] for index in definition["GlobalSecondaryIndexes"]]

    def active(table: Any) -> bool:
        found = _indexes(table)
        if any(name not in found for name in names):
            raise TableSetupError(f"table {definition['TableName']} lost an index while init ran")
        return all(found[name].get("IndexStatus") == "ACTIVE" for name in names)

    _poll(client, definition["TableName"], active, f"indexes {', '.join(names)}")


def _poll(client: DynamoDBClient, table_name: str, ready: Callable[[Any], bool], what: str) -> None:
    deadline = time.monotonic() + INDEX_WAIT_SECONDS
    while not ready(_describe(client, table_name)):
        if time.monotonic() > deadline:
            raise TableSetupError(
                f"{what} of table {table_name} not ACTIVE after {INDEX_WAIT_SECONDS:g}s; "
                "run init again to wait longer"
            )
        time.sleep(INDEX_POLL_SECONDS)
