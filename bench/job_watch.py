"""Watches runner-jobs (what a topic-fed runner receives) and execution-events, from the start.

Each job and event is keyed by (tenant_id, jit_event_id), as the triggers are. For each key the
first record seen is kept: its broker timestamp (the worker's producer stamps it when it sends)
and the wall-clock time this process received it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from bench.progress import Progress
from execution_stream.adapters.kafka_topic_reader import READ_UNCOMMITTED, KafkaTopicReader

Key = tuple[str, str]
STALL_SECONDS = 120.0


@dataclass(frozen=True)
class Seen:
    timestamp_ms: int
    received_at: float


@dataclass
class JobWatch:
    bootstrap_servers: str
    jobs_topic: str
    events_topic: str
    jobs: dict[Key, Seen] = field(default_factory=dict)
    job_records: int = 0
    created: dict[Key, Seen] = field(default_factory=dict)
    dispatched: dict[Key, Seen] = field(default_factory=dict)
    _reader: KafkaTopicReader | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        topics = [self.jobs_topic, self.events_topic]
        self._reader = KafkaTopicReader(self.bootstrap_servers, topics, isolation_level=READ_UNCOMMITTED)
        await self._reader.start()
        self._task = asyncio.create_task(self._follow(self._reader))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._reader is not None:
            await self._reader.stop()

    async def _follow(self, reader: KafkaTopicReader) -> None:
        while True:
            batches = await reader.poll(timeout_ms=100, max_records=2000)
            received_at = time.time()
            for partition, records in batches.items():
                for record in records:
                    self._note(partition.topic, record, received_at)

    def _note(self, topic: str, record: Any, received_at: float) -> None:
        document = json.loads(record.value)
        key = (document["tenant_id"], document["jit_event_id"])
        seen = Seen(record.timestamp, received_at)
        if topic == self.jobs_topic:
            self.job_records += 1
            self.jobs.setdefault(key, seen)
        elif document.get("status") == "pending":
            self.created.setdefault(key, seen)
        elif document.get("status") == "dispatched":
            self.dispatched.setdefault(key, seen)

    async def wait_for(
        self,
        keys: Collection[Key],
        of: Callable[[JobWatch], dict[Key, Seen]],
        label: str,
        seconds: float,
        alive: Callable[[], None],
    ) -> list[Seen]:
        """Waits until every key has been seen in `of(self)`; what was seen for each, in key order.
        Gives up after `seconds`, or after STALL_SECONDS without a new key (a worker whose stream
        processors crash and restart stays alive, and would otherwise hold the run until the
        deadline)."""
        deadline = time.monotonic() + seconds
        last_count, last_progress = -1, time.monotonic()
        with Progress(label, len(keys)) as progress:
            while True:
                seen = of(self)
                count = sum(1 for key in keys if key in seen)
                progress.update(count)
                if count == len(keys):
                    return [seen[key] for key in keys]
                alive()
                now = time.monotonic()
                if count != last_count:
                    last_count, last_progress = count, now
                if now > deadline:
                    raise TimeoutError(f"{label}: {count}/{len(keys)} seen within {seconds:.0f}s")
                if now - last_progress > STALL_SECONDS:
                    raise TimeoutError(
                        f"{label}: {count}/{len(keys)} seen, none new for {STALL_SECONDS:.0f}s "
                        "(see the worker's log in the work directory)"
                    )
                await asyncio.sleep(0.05)
