"""Whole topics read from their beginning, outside any consumer group.

A consumer of no group is assigned every partition of the topics and seeks to their beginning.
`read_to_end` yields what the topics hold when it is called; `poll` follows them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from types import TracebackType
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from execution_stream.adapters.kafka_fetching import READ_COMMITTED

# Records of open and aborted transactions too, the moment they are written: what the tests' runners
# see, and the latency the bench measures.
READ_UNCOMMITTED = "read_uncommitted"

Record: TypeAlias = ConsumerRecord[bytes, bytes]
Batches: TypeAlias = dict[TopicPartition, list[Record]]


async def partitions_of(bootstrap_servers: str, topics: Collection[str]) -> list[TopicPartition]:
    """Every partition of those of `topics` that exist, in the order of `topics`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        # Every topic described, none named: a broker that auto-creates topics would create one named.
        described: list[dict[str, Any]] = await admin.describe_topics()
    finally:
        await admin.close()
    found = partitions_by_topic(described)
    return [TopicPartition(topic, partition) for topic in topics for partition in found.get(topic, [])]


def partitions_by_topic(described: list[dict[str, Any]]) -> dict[str, list[int]]:
    """An admin client's description of topics as the sorted partitions of each that exists."""
    return {
        str(topic["topic"]): sorted(int(p["partition"]) for p in topic["partitions"])
        for topic in described
        if topic["error_code"] == 0
    }


class KafkaTopicReader:
    """A consumer of no group on every partition of `topics` (those that exist), from the beginning.

    The partitions are learnt through an admin client: a consumer's own metadata holds only the topics
    it already reads.
    """

    def __init__(
        self, bootstrap_servers: str, topics: Collection[str], *, isolation_level: str = READ_COMMITTED
    ) -> None:
        self._servers = bootstrap_servers
        self._topics = topics
        self._isolation_level = isolation_level
        self._consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        self.partitions = await partitions_of(self._servers, self._topics)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=self._isolation_level,
        )
        await self._consumer.start()
        try:
            await self._assign_from_the_beginning(self._consumer)
        except BaseException:
            await self.stop()
            raise

    async def _assign_from_the_beginning(self, consumer: AIOKafkaConsumer) -> None:
        consumer.assign(self.partitions)
        if self.partitions:  # aiokafka seeks every assigned partition when named none
            await consumer.seek_to_beginning(*self.partitions)

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def __aenter__(self) -> KafkaTopicReader:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.stop()

    async def seek_to_end(self) -> None:
        """From here, only the records written after this call (from the end offsets of now)."""
        consumer = self._started()
        if not self.partitions:
            return
        ends: dict[TopicPartition, int] = await consumer.end_offsets(self.partitions)
        for partition, offset in ends.items():
            consumer.seek(partition, offset)

    async def poll(self, timeout_ms: int, max_records: int | None = None) -> Batches:
        """The records fetched since the last poll, waiting at most `timeout_ms` for some."""
        batches: Batches = await self._started().getmany(timeout_ms=timeout_ms, max_records=max_records)
        return batches

    async def read_to_end(self, poll_timeout_ms: int = 500) -> AsyncIterator[Record]:
        """Every record before the end offsets of now (under read_committed, the last stable ones)."""
        consumer = self._started()
        behind: dict[TopicPartition, int] = await consumer.end_offsets(self.partitions)
        while behind:
            for records in (await self.poll(poll_timeout_ms)).values():
                for record in records:
                    yield record
            behind = {tp: end for tp, end in behind.items() if await consumer.position(tp) < end}

    def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the topic reader is not started")
        return self._consumer
