"""`execution-stream lag`: consumer lag per group, topic and partition, read from the brokers.

For each group: DescribeGroups (state, members, their assignments) and OffsetFetch (committed
offsets); for every partition of the topics the group commits to or is assigned: the log-end offset,
and for partitions with lag the timestamp of the record at the committed offset (the oldest message
the group has not consumed), read by a consumer of no group that is assigned the partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupIdNotFound, for_code

from execution_stream.adapters import kafka_fetching
from execution_stream.adapters.kafka_calls import bounded, kafka_errors
from execution_stream.adapters.kafka_topic_reader import partitions_by_topic
from execution_stream.operations.lag_render import render_json, render_text
from execution_stream.operations.lag_report import GroupLag, LagReport, PartitionLag
from execution_stream.operations.lag_status import DEFAULT_WINDOW, Observation, StatusTracker
from execution_stream.operations.member_assignment import (
    Member,
    MemberPartitions,
    TopicPartitionKey,
    decode_assignment,
    owners,
)
from execution_stream.settings import Settings

T = TypeVar("T")
DEFAULT_FETCH_TIMEOUT_SECONDS = 5.0
CLEAR_SCREEN = "\033[H\033[J"


class ConsumerGroupNotFoundError(LookupError):
    def __init__(self, group: str, bootstrap_servers: str) -> None:
        super().__init__(
            f"consumer group {group!r} does not exist at {bootstrap_servers} "
            "(no members, no committed offsets)"
        )


@dataclass(frozen=True)
class LagOptions:
    groups: tuple[str, ...]
    as_json: bool = False
    watch_seconds: float | None = None  # refresh every N seconds until Ctrl-C (or `count` refreshes)
    count: int | None = None
    window: int = DEFAULT_WINDOW
    fetch_timeout_seconds: float = DEFAULT_FETCH_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not self.groups:
            raise ValueError("name at least one consumer group")
        for flag, value in (
            ("--watch", self.watch_seconds),
            ("--count", self.count),
            ("--window", self.window),
            ("--fetch-timeout", self.fetch_timeout_seconds),
        ):
            if value is not None and value <= 0:
                raise ValueError(f"{flag} must be greater than 0, not {value:g}")


@dataclass(frozen=True)
class GroupSnapshot:
    group: str
    state: str
    members: list[tuple[Member, MemberPartitions]]
    committed: dict[TopicPartitionKey, int]


def run_lag(settings: Settings, options: LagOptions, out: TextIO = sys.stdout) -> int:
    # aiokafka logs each failed connection attempt; the one error that matters reaches the CLI's main.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        asyncio.run(watch(settings, options, out))
    except KeyboardInterrupt:
        if options.watch_seconds is None:
            raise
    return 0


async def watch(settings: Settings, options: LagOptions, out: TextIO) -> None:
    """One report, or one every `watch_seconds` whose statuses see all the observations so far."""
    tracker = StatusTracker(options.window)
    clear = options.watch_seconds is not None and not options.as_json and out.isatty()
    async with LagInspector(settings, options.fetch_timeout_seconds) as inspector:
        refreshes = 0
        while True:
            report = await inspector.report(options.groups, tracker)
            text = render_json(report) if options.as_json else render_text(report)
            separator = "\n" if options.watch_seconds is not None and not (clear or options.as_json) else ""
            out.write((CLEAR_SCREEN if clear else "") + text + "\n" + separator)
            out.flush()
            refreshes += 1
            if options.watch_seconds is None or (options.count is not None and refreshes >= options.count):
                return
            await asyncio.sleep(options.watch_seconds)


async def lag_report(
    settings: Settings,
    groups: Sequence[str],
    tracker: StatusTracker | None = None,
    fetch_timeout_seconds: float = DEFAULT_FETCH_TIMEOUT_SECONDS,
) -> LagReport:
    async with LagInspector(settings, fetch_timeout_seconds) as inspector:
        return await inspector.report(groups, tracker or StatusTracker())


class LagInspector:
    """An admin client and a consumer of no group, open for as many reports as `--watch` takes."""

    def __init__(self, settings: Settings, fetch_timeout_seconds: float) -> None:
        self._servers = settings.kafka_bootstrap_servers
        self._timeout = settings.kafka_connect_timeout_seconds
        self._fetch_timeout = fetch_timeout_seconds
        request_timeout_ms = int(self._timeout * 1000)
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=self._servers, request_timeout_ms=request_timeout_ms
        )
        kafka_fetching.apply()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            isolation_level=kafka_fetching.READ_COMMITTED,
            group_id=None,
            client_id="execution-stream-lag",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=request_timeout_ms,
            max_partition_fetch_bytes=64 * 1024,
        )

    async def __aenter__(self) -> LagInspector:
        try:
            with self._kafka_errors("connecting"):
                await self._bounded(self._admin.start())
                await self._bounded(self._consumer.start())
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    async def report(self, groups: Sequence[str], tracker: StatusTracker) -> LagReport:
        with self._kafka_errors("reading consumer groups"):
            snapshots = [await self._snapshot(group) for group in groups]
            partitions = await self._partitions({key[0] for s in snapshots for key in _keys_of(s)})
            ends = await self._end_offsets(partitions)
            oldest = [await self._oldest_timestamps(s.committed, ends) for s in snapshots]
        now = time.time()
        built = [
            build_group(
                snapshot, partitions=partitions, ends=ends, timestamps=timestamps, now=now, tracker=tracker
            )
            for snapshot, timestamps in zip(snapshots, oldest, strict=True)
        ]
        return LagReport(now, self._servers, tuple(built))

    async def _snapshot(self, group: str) -> GroupSnapshot:
        # One group per request: aiokafka misreads a DescribeGroups response holding several.
        [response] = await self._bounded(self._admin.describe_consumer_groups([group]))
        error_code, _, state, _, _, members, *_ = response.groups[0]
        offsets = await self._bounded(self._admin.list_consumer_group_offsets(group))
        committed = {
            (tp.topic, tp.partition): int(meta.offset) for tp, meta in offsets.items() if meta.offset >= 0
        }
        if (state == "Dead" or error_code == GroupIdNotFound.errno) and not committed:
            raise ConsumerGroupNotFoundError(group, self._servers)
        if error_code:
            raise for_code(error_code)(f"describing consumer group {group!r}")
        decoded = [
            (Member(str(m[0]), str(m[2]), str(m[1])), decode_assignment(bytes(m[-1]))) for m in members
        ]
        return GroupSnapshot(group, str(state), decoded, committed)

    async def _partitions(self, topics: set[str]) -> dict[str, list[int]]:
        if not topics:
            return {}
        described: list[dict[str, Any]] = await self._bounded(self._admin.describe_topics(sorted(topics)))
        return partitions_by_topic(described)

    async def _end_offsets(self, partitions: Mapping[str, list[int]]) -> dict[TopicPartitionKey, int]:
        tps = [TopicPartition(topic, number) for topic, numbers in partitions.items() for number in numbers]
        if not tps:
            return {}
        ends: dict[TopicPartition, int] = await self._bounded(self._consumer.end_offsets(tps))
        return {(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}

    async def _oldest_timestamps(
        self, committed: Mapping[TopicPartitionKey, int], ends: Mapping[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, float]:
        """The timestamp (seconds) of the first record at or after each committed offset with lag."""
        behind = {
            TopicPartition(*key): offset for key, offset in committed.items() if offset < ends.get(key, 0)
        }
        if not behind:
            return {}
        self._consumer.assign(list(behind))
        for tp, offset in behind.items():
            self._consumer.seek(tp, offset)
        found: dict[TopicPartitionKey, float] = {}
        deadline = time.monotonic() + self._fetch_timeout
        while len(found) < len(behind) and (remaining := deadline - time.monotonic()) > 0:
            pending = [tp for tp in behind if (tp.topic, tp.partition) not in found]
            batches = await self._consumer.getmany(*pending, timeout_ms=int(remaining * 1000))
            for tp, records in batches.items():
                if records and records[0].timestamp is not None and records[0].timestamp >= 0:
                    found[(tp.topic, tp.partition)] = records[0].timestamp / 1000
                    self._consumer.pause(tp)
        return found

    async def _bounded(self, call: Awaitable[T]) -> T:
        return await bounded(call, self._timeout)

    def _kafka_errors(self, doing: str) -> contextlib.AbstractContextManager[None]:
        return kafka_errors(self._servers, self._timeout, doing)

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await self._consumer.stop()
        with contextlib.suppress(Exception):
            await self._admin.close()


def build_group(
    snapshot: GroupSnapshot,
    *,
    partitions: Mapping[str, list[int]],
    ends: Mapping[TopicPartitionKey, int],
    timestamps: Mapping[TopicPartitionKey, float],
    now: float,
    tracker: StatusTracker,
) -> GroupLag:
    """One group's lag at `now`; each committed partition adds an observation to `tracker`."""
    owned = owners(snapshot.members)
    topics = {topic for topic, _ in _keys_of(snapshot)}
    keys = [(t, n) for t in sorted(topics) for n in partitions.get(t, []) if (t, n) in ends]
    rows: list[PartitionLag] = []
    for key in keys:
        committed = snapshot.committed.get(key)
        status = None
        if committed is not None:
            observation = Observation(committed, ends[key], now, owned=key in owned)
            status = tracker.observe((snapshot.group, *key), observation)
        behind = committed is not None and committed < ends[key]
        age = max(0.0, now - timestamps[key]) if behind and key in timestamps else None
        rows.append(PartitionLag(key[0], key[1], committed, ends[key], age, owned.get(key), status))
    seen = max((tracker.observations((snapshot.group, *key)) for key in keys), default=0)
    return GroupLag(snapshot.group, snapshot.state, len(snapshot.members), tuple(rows), seen, tracker.window)


def _keys_of(snapshot: GroupSnapshot) -> set[TopicPartitionKey]:
    """The partitions the group commits to or is assigned (all their topics' partitions are shown)."""
    assigned = {key for _, held in snapshot.members for key in held.actives | held.standbys}
    return set(snapshot.committed) | assigned
