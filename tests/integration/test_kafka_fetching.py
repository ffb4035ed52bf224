"""aiokafka's fetcher on the real broker: an undecodable batch holds only its partition; the offsets
of transaction markers and aborted records are known as skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiokafka.codec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from execution_stream.adapters import kafka_fetching
from execution_stream.adapters.kafka_fetching import SKIPPED, UndecodableBatch
from execution_stream.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def topic(stack_settings: Settings, unique: str) -> AsyncIterator[str]:
    name = f"fetching-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
        yield name
    finally:
        await admin.close()


async def write(
    settings: Settings, topic: str, partition: int, values: list[bytes], codec: str | None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, compression_type=codec)
    await producer.start()
    try:
        batch = [await producer.send(topic, value, partition=partition) for value in values]
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


async def read_all(consumer: AIOKafkaConsumer, until: int, seconds: float = 15) -> list[tuple[int, bytes]]:
    found: list[tuple[int, bytes]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while len(found) < until and asyncio.get_running_loop().time() < deadline:
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            found.extend((tp.partition, record.value) for record in records)
    return found


async def open_consumer(settings: Settings, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        isolation_level=kafka_fetching.READ_COMMITTED,
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    return consumer


async def test_a_batch_this_process_cannot_decode_holds_its_partition_and_the_others_go_on(
    stack_settings: Settings, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka_fetching.apply()
    held: list[UndecodableBatch] = []
    kafka_fetching.on_undecodable(held.append)
    await write(stack_settings, topic, 0, [b"plain-0"], None)
    await write(stack_settings, topic, 0, [b"zstd-1", b"zstd-2"], "zstd")
    await write(stack_settings, topic, 1, [b"other-0", b"other-1"], None)

    monkeypatch.setattr(aiokafka.codec, "cramjam", None)  # a process without the zstd codec
    consumer = await open_consumer(stack_settings, topic)
    try:
        found = await read_all(consumer, until=3)
        assert sorted(found) == [(0, b"plain-0"), (1, b"other-0"), (1, b"other-1")]
        assert [(b.topic, b.partition, b.offset) for b in held] == [(topic, 0, 1)]
        assert "UnsupportedCodecError" in held[0].error
        assert TopicPartition(topic, 0) in consumer.paused()
        assert await consumer.position(TopicPartition(topic, 0)) == 1
    finally:
        await consumer.stop()

    monkeypatch.undo()  # the codec installed: the held records are read from where they were held
    consumer = await open_consumer(stack_settings, topic)
    try:
        consumer.seek(TopicPartition(topic, 0), 1)
        consumer.seek(TopicPartition(topic, 1), 2)
        assert sorted(await read_all(consumer, until=2)) == [(0, b"zstd-1"), (0, b"zstd-2")]
    finally:
        await consumer.stop()


async def test_transaction_markers_and_aborted_records_are_skipped_offsets(
    stack_settings: Settings, topic: str, unique: str
) -> None:
    kafka_fetching.apply()
    SKIPPED.track({topic})
    producer = AIOKafkaProducer(
        bootstrap_servers=stack_settings.kafka_bootstrap_servers, transactional_id=f"fetching-{unique}"
    )
    await producer.start()
    try:
        for value, commit in ((b"committed-0", True), (b"aborted-0", False), (b"committed-1", True)):
            await producer.begin_transaction()
            await producer.send_and_wait(topic, value, partition=0)
            await (producer.commit_transaction() if commit else producer.abort_transaction())
    finally:
        await producer.stop()

    consumer = await open_consumer(stack_settings, topic)
    try:
        # 0 committed-0, 1 its commit marker, 2 aborted-0, 3 its abort marker, 4 committed-1, 5 marker
        assert sorted(await read_all(consumer, until=2)) == [(0, b"committed-0"), (0, b"committed-1")]
        await asyncio.sleep(1)
        tp = TopicPartition(topic, 0)
        assert [SKIPPED.end_of_range_at(tp, offset) for offset in range(7)] == [None, 4, 4, 4, None, 6, None]
        assert await consumer.position(tp) == 6
    finally:
        await consumer.stop()
