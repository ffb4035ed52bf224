"""`init` adds GSI5 to a table created before it existed, waits for it, and does it only once.

What `init` prints about it is checked in tests/unit/test_provisioning.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import pytest

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.adapters.dynamodb_client import open_client, to_attribute_values
from execution_stream.adapters.dynamodb_item_codec import execution_to_item
from execution_stream.adapters.dynamodb_reads import open_reader
from execution_stream.adapters.dynamodb_table import (
    TableCreated,
    TableSetupError,
    create_table,
    table_definition,
)
from execution_stream.settings import Settings
from tests.support.factories import execution

pytestmark = pytest.mark.dynamodb_engines


def definition_without_gsi5(table_name: str) -> dict[str, Any]:
    """The table as `init` created it before GSI5: four GSIs and their key attributes only."""
    definition = table_definition(table_name)
    definition["GlobalSecondaryIndexes"] = [
        index for index in definition["GlobalSecondaryIndexes"] if index["IndexName"] != "GSI5"
    ]
    definition["AttributeDefinitions"] = [
        attribute
        for attribute in definition["AttributeDefinitions"]
        if attribute["AttributeName"] != "GSI5PK"
    ]
    return definition


def describe(settings: Settings) -> Any:
    client = boto3.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url)
    return client.describe_table(TableName=settings.dynamodb_table)["Table"]


async def put_execution_items(settings: Settings, count: int) -> list[str]:
    stored = [execution("tenant-gsi5", number) for number in range(count)]
    async with open_client(settings) as client:
        for one in stored:
            await client.put_item(
                TableName=settings.dynamodb_table, Item=to_attribute_values(execution_to_item(one))
            )
    return [one.execution_id for one in stored]


async def test_init_adds_gsi5_to_a_table_without_it_once(isolated_settings: Settings) -> None:
    # The table part of `init` (provision's topic part is left out: test_init counts topics).
    settings = isolated_settings
    client = boto3.client("dynamodb", endpoint_url=settings.dynamodb_endpoint_url)
    client.create_table(**definition_without_gsi5(settings.dynamodb_table))
    ids = await put_execution_items(settings, 3)  # stored with GSI5PK, before the index

    first = await asyncio.to_thread(create_table, settings)
    second = await asyncio.to_thread(create_table, settings)

    name = settings.dynamodb_table
    assert first == TableCreated(name, created=False, indexes_added=("GSI5",))
    assert second == TableCreated(name, created=False, indexes_added=())
    table = describe(settings)
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert sorted(indexes) == ["GSI1", "GSI2", "GSI3", "GSI4", "GSI5"]
    assert indexes["GSI5"]["KeySchema"] == [{"AttributeName": "GSI5PK", "KeyType": "HASH"}]
    assert indexes["GSI5"]["Projection"] == {"ProjectionType": "ALL"}
    assert indexes["GSI5"]["IndexStatus"] == "ACTIVE"
    assert {a["AttributeName"] for a in table["AttributeDefinitions"]} == keys.KEY_ATTRIBUTES
    async with open_reader(settings) as reader:
        found = await asyncio.gather(*(reader.find("tenant-gsi5", execution_id) for execution_id in ids))
    assert [one.execution_id if one else None for one in found] == ids


async def test_a_new_table_gets_gsi5_at_creation(isolated_settings: Settings) -> None:
    created = await asyncio.to_thread(create_table, isolated_settings)
    assert (created.created, created.indexes_added) == (True, ())
    indexes = {index["IndexName"] for index in describe(isolated_settings)["GlobalSecondaryIndexes"]}
    assert "GSI5" in indexes


@pytest.mark.parametrize(
    ("sort_key", "projection"), [(["GSI1SK"], "ALL"), ([], "KEYS_ONLY")], ids=["range-key", "keys-only"]
)
def test_a_gsi5_of_another_shape_is_left_alone(
    isolated_settings: Settings, sort_key: list[str], projection: str
) -> None:
    definition = definition_without_gsi5(isolated_settings.dynamodb_table)
    definition["AttributeDefinitions"].append({"AttributeName": "GSI5PK", "AttributeType": "S"})
    schema = [{"AttributeName": "GSI5PK", "KeyType": "HASH"}]
    schema += [{"AttributeName": name, "KeyType": "RANGE"} for name in sort_key]
    definition["GlobalSecondaryIndexes"].append(
        {"IndexName": "GSI5", "KeySchema": schema, "Projection": {"ProjectionType": projection}}
    )
    boto3.client("dynamodb", endpoint_url=isolated_settings.dynamodb_endpoint_url).create_table(**definition)
    with pytest.raises(TableSetupError, match="left unchanged"):
        create_table(isolated_settings)
    indexes = {i["IndexName"]: i for i in describe(isolated_settings)["GlobalSecondaryIndexes"]}
    assert indexes["GSI5"]["KeySchema"] == schema
