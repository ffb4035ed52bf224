"""Creates the Executions table with its four GSIs (the seed's key scheme); safe to run twice.

boto3 is blocking, which is harmless here: this runs once, from `init`, before any traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from execution_stream.domain import keys
from execution_stream.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient


class TableSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class TableCreated:
    name: str
    created: bool


def table_definition(table_name: str) -> dict[str, Any]:
    attributes = {keys.PK, keys.SK} | {name for _, pk, sk in keys.GSI_KEY_ATTRIBUTES for name in (pk, sk)}
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in sorted(attributes)
        ],
        "KeySchema": _key_schema(keys.PK, keys.SK),
        "GlobalSecondaryIndexes": [
            {
                "IndexName": str(index),
                "KeySchema": _key_schema(pk, sk),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, pk, sk in keys.GSI_KEY_ATTRIBUTES
        ],
    }


def _key_schema(partition: str, sort: str) -> list[dict[str, str]]:
    return [
        {"AttributeName": partition, "KeyType": "HASH"},
        {"AttributeName": sort, "KeyType": "RANGE"},
    ]


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
    except (BotoCoreError, ClientError) as error:
        raise TableSetupError(f"DynamoDB at {where}: {error}") from error
    _check_matches(description, definition)
    return TableCreated(settings.dynamodb_table, created)


def _check_matches(description: Any, definition: dict[str, Any]) -> None:
    wanted = {index["IndexName"]: index["KeySchema"] for index in definition["GlobalSecondaryIndexes"]}
    found = {
        index["IndexName"]: index["KeySchema"] for index in description.get("GlobalSecondaryIndexes", [])
    }
    if description["KeySchema"] != definition["KeySchema"] or any(
        found.get(n) != s for n, s in wanted.items()
    ):
        raise TableSetupError(
            f"table {definition['TableName']} exists with another key schema or indexes; "
            "it was left unchanged"
        )
