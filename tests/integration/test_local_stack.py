"""The local stack is real: a Java Kafka broker with consumer groups, and a DynamoDB endpoint."""

from __future__ import annotations

import boto3
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from execution_stream.settings import Settings


async def test_consumer_group_commits_offsets_on_the_broker(stack_settings: Settings, unique: str) -> None:
    topic, group = f"roundtrip-{unique}", f"group-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=stack_settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for number in range(30):
            await producer.send(topic, key=f"tenant-{number % 5}".encode(), value=str(number).encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack_settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        received: list[bytes] = []
        while len(received) < 30:
            batches = await consumer.getmany(timeout_ms=5000)
            assert batches, "the broker delivered nothing within 5s"
            received += [record.value for records in batches.values() for record in records if record.value]
        await consumer.commit()
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = await consumer.end_offsets(partitions)
        committed = {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()

    assert sorted(int(value) for value in received) == list(range(30))
    assert committed == ends
    assert sum(ends.values()) == 30


def test_dynamodb_endpoint_answers_boto3(stack_settings: Settings, unique: str) -> None:
    client = boto3.client("dynamodb", endpoint_url=stack_settings.dynamodb_endpoint_url)
    table = f"probe-{unique}"
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    client.put_item(TableName=table, Item={"id": {"S": "one"}, "value": {"N": "1"}})
    item = client.get_item(TableName=table, Key={"id": {"S": "one"}}, ConsistentRead=True)["Item"]
    assert item == {"id": {"S": "one"}, "value": {"N": "1"}}
