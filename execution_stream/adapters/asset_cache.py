"""The assets topic as a table every worker can read whole (a global table, as Kafka Streams has).

One consumer outside the group reads every partition of the compacted `assets` topic from the
beginning; `start` returns once it has caught up with the end offsets it saw, then it follows the
topic. A null value (tombstone) removes the asset. A malformed asset is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from execution_stream.adapters import kafka_fetching
from execution_stream.adapters.kafka_topic_reader import KafkaTopicReader
from execution_stream.domain.models import Asset

logger = logging.getLogger(__name__)


class AssetCacheError(RuntimeError):
    pass


class KafkaAssetCache:
    def __init__(self, bootstrap_servers: str, topic: str, catch_up_timeout_seconds: float = 60.0) -> None:
        self._topic = topic
        kafka_fetching.apply()
        self._reader = KafkaTopicReader(
            bootstrap_servers, [topic], isolation_level=kafka_fetching.READ_COMMITTED
        )
        self._catch_up_timeout = catch_up_timeout_seconds
        self._assets: dict[str, Asset] = {}
        self._follower: asyncio.Task[None] | None = None

    def get(self, asset_id: str) -> Asset | None:
        return self._assets.get(asset_id)

    def __len__(self) -> int:
        return len(self._assets)

    async def start(self) -> None:
        await self._reader.start()
        try:
            await asyncio.wait_for(self._catch_up(), timeout=self._catch_up_timeout)
        except BaseException:
            await self._reader.stop()
            raise
        self._follower = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        await self._reader.stop()

    async def _catch_up(self) -> None:
        if not self._reader.partitions:
            raise AssetCacheError(f"topic {self._topic!r} does not exist: run `execution-stream init`")
        async for record in self._reader.read_to_end():
            self._apply(record)

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
        batches = await self._reader.poll(timeout_ms=500)
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
