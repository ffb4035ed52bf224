"""The assets topic as a table every worker can read whole (a global table, as Kafka Streams has).

One consumer outside the group reads every partition of the compacted `assets` topic from the
beginning; `start` returns once it has caught up with the end offsets it saw, then it follows the
topic. A null value (tombstone) removes the asset. A malformed asset is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from execution_stream.adapters import kafka_fetching
from execution_stream.domain.models import Asset

logger = logging.getLogger(__name__)


class AssetCacheError(RuntimeError):
    pass


class KafkaAssetCache:
    def __init__(self, bootstrap_servers: str, topic: str, catch_up_timeout_seconds: float = 60.0) -> None:
        self._topic = topic
        kafka_fetching.apply()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=kafka_fetching.READ_COMMITTED,
        )
        self._catch_up_timeout = catch_up_timeout_seconds
        self._assets: dict[str, Asset] = {}
        self._follower: asyncio.Task[None] | None = None

    def get(self, asset_id: str) -> Asset | None:
        return self._assets.get(asset_id)

    def __len__(self) -> int:
        return len(self._assets)

    async def start(self) -> None:
        await self._consumer.start()
        try:
            await self._catch_up_from_the_beginning()
        except BaseException:
            await self._consumer.stop()
            raise
        self._follower = asyncio.create_task(self._follow())

    async def _catch_up_from_the_beginning(self) -> None:
        cluster = await self._consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self._topic)
        if not partitions:
            raise AssetCacheError(f"topic {self._topic!r} does not exist: run `execution-stream init`")
        assigned = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)
        ends = await self._consumer.end_offsets(assigned)
        await asyncio.wait_for(self._catch_up(ends), timeout=self._catch_up_timeout)

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        await self._consumer.stop()

    async def _catch_up(self, ends: dict[TopicPartition, int]) -> None:
        behind = dict(ends)
        while behind:
            await self._poll()
            behind = {tp: end for tp, end in behind.items() if await self._consumer.position(tp) < end}

    async def _follow(self) -> None:
        while True:
            try:
                await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reading the assets topic failed; retrying")
                await asyncio.sleep(1)

    async def _poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                self._apply(record)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        key = record.key.decode(errors="replace") if record.key is not None else None
        if record.value is None:
            if key is not None:
                self._assets.pop(key, None)
            return
        try:
            asset = Asset.model_validate_json(record.value)
        except ValidationError as error:
            logger.warning("skipping a malformed asset at offset %s: %s", record.offset, error)
            return
        self._assets[asset.asset_id] = asset
