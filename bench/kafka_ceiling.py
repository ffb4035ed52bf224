"""K: what raw aiokafka moves through the broker, batched as a good aiokafka program batches.

Trigger-sized records are produced to a fresh topic, then one consumer group member reads them
(`getmany`), produces each to a second topic without awaiting each send, waits for the batch to be
delivered, and commits the batch: the skeleton of every agent of the worker, with no work inside.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.progress import Progress

MAX_RECORDS_PER_BATCH = 1000
STALL_SECONDS = 60.0


@dataclass(frozen=True)
class KafkaCeiling:
    records: int
    record_bytes: int
    produce_per_second: float
    pass_through_per_second: float


async def create_topics(bootstrap_servers: str, names: Sequence[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


def producer_for(bootstrap_servers: str) -> Any:
    # acks=all as the worker's producer (faust producer_acks=-1); a short linger fills batches.
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)


async def produce_all(producer: Any, topic: str, records: Sequence[tuple[str, bytes]], label: str) -> float:
    """Sends every record without awaiting each, waits for all to be delivered; records/s."""
    started = time.perf_counter()
    with Progress(label, len(records)) as progress:
        for first in range(0, len(records), MAX_RECORDS_PER_BATCH):
            chunk = records[first : first + MAX_RECORDS_PER_BATCH]
            delivered = [await producer.send(topic, value, key=key.encode()) for key, value in chunk]
            await asyncio.gather(*delivered)
            progress.advance(len(chunk))
    return len(records) / (time.perf_counter() - started)


async def pass_through(bootstrap_servers: str, source: str, sink: str, total: int) -> float:
    """Records/s from the first batch received to the commit of the last one."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap_servers,
        group_id=f"bench-k-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = producer_for(bootstrap_servers)
    await consumer.start()
    await producer.start()
    try:
        return await _pass_batches(consumer, producer, sink, total)
    finally:
        await consumer.stop()
        await producer.stop()


async def _pass_batches(consumer: Any, producer: Any, sink: str, total: int) -> float:
    started = 0.0
    passed = 0
    last_progress = time.monotonic()
    with Progress("K: consume -> produce -> commit", total) as progress:
        while passed < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=MAX_RECORDS_PER_BATCH)
            records = [record for batch in batches.values() for record in batch]
            if not records:
                if time.monotonic() - last_progress > STALL_SECONDS:
                    raise RuntimeError(f"pass-through stalled at {passed}/{total} records")
                continue
            started = started or time.perf_counter()  # the clock starts with the first batch
            delivered = [await producer.send(sink, r.value, key=r.key) for r in records]
            await producer.flush()
            await asyncio.gather(*delivered)
            await consumer.commit()
            passed += len(records)
            last_progress = time.monotonic()
            progress.update(passed)
    return passed / (time.perf_counter() - started)


async def kafka_ceiling(
    bootstrap_servers: str, records: Sequence[tuple[str, bytes]], partitions: int
) -> KafkaCeiling:
    run = uuid.uuid4().hex[:8]
    source, sink = f"bench-k-in-{run}", f"bench-k-out-{run}"
    await create_topics(bootstrap_servers, [source, sink], partitions)
    producer = producer_for(bootstrap_servers)
    await producer.start()
    try:
        produced = await produce_all(producer, source, records, "K: produce")
    finally:
        await producer.stop()
    passed = await pass_through(bootstrap_servers, source, sink, len(records))
    size = round(sum(len(value) for _, value in records) / len(records))
    return KafkaCeiling(len(records), size, produced, passed)
