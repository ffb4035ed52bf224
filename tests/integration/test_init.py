"""`init` against the real broker and DynamoDB endpoint: everything once, and twice is harmless."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import boto3
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from execution_stream.adapters import dynamodb_keys as keys
from execution_stream.dev_stack.processes import free_loopback_port
from execution_stream.provisioning import provision
from execution_stream.settings import Settings


async def test_init_twice_creates_everything_once(isolated_settings: Settings) -> None:
    first = await provision(isolated_settings)
    second = await provision(isolated_settings)

    assert first[1] == "topics already present: none"
    assert first[2] == f"table {isolated_settings.dynamodb_table}: created"
    assert second[0] == "topics created: none"
    assert second[2] == f"table {isolated_settings.dynamodb_table}: already present"
    await _assert_topics(isolated_settings)


async def _assert_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(settings.topic_names())
        configs = await admin.describe_configs(
            [_topic_resource(name) for name in sorted(settings.compacted_topics())]
        )
    finally:
        await admin.close()
    partitions = {topic["topic"]: len(topic["partitions"]) for topic in described}
    assert partitions == dict.fromkeys(settings.topic_names(), settings.kafka_partitions)
    cleanup = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}["cleanup.policy"]
        for response in configs
        for resource in response.resources
    }
    assert cleanup == dict.fromkeys(settings.compacted_topics(), "compact")


def _topic_resource(name: str) -> ConfigResource:
    return ConfigResource(ConfigResourceType.TOPIC, name, configs={"cleanup.policy": None})


@pytest.mark.dynamodb_engines
async def test_table_has_the_seed_key_scheme(isolated_settings: Settings) -> None:
    await provision(isolated_settings)
    client = boto3.client("dynamodb", endpoint_url=isolated_settings.dynamodb_endpoint_url)
    table = client.describe_table(TableName=isolated_settings.dynamodb_table)["Table"]

    assert table["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert sorted(indexes) == ["GSI1", "GSI2", "GSI3", "GSI4", "GSI5"]
    for name, index in indexes.items():
        sort_key = [] if name == "GSI5" else [{"AttributeName": f"{name}SK", "KeyType": "RANGE"}]
        assert index["KeySchema"] == [{"AttributeName": f"{name}PK", "KeyType": "HASH"}, *sort_key]
        assert index["Projection"] == {"ProjectionType": "ALL"}
    assert {a["AttributeName"] for a in table["AttributeDefinitions"]} == keys.KEY_ATTRIBUTES


def test_init_against_a_dead_address_fails_fast_with_a_message(stack_settings: Settings) -> None:
    dead = f"127.0.0.1:{free_loopback_port()}"
    environment = {
        **os.environ,
        "EXECUTION_STREAM_KAFKA_BOOTSTRAP_SERVERS": dead,
        "EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL": str(stack_settings.dynamodb_endpoint_url),
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "execution_stream", "init"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 1
    assert elapsed < 30
    assert dead in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("execution-stream init: cannot reach")
