"""aiokafka's fetcher, made to survive any producer: the one module that touches aiokafka's internals.

1. A record batch that cannot be decoded (a codec this process lacks, a corrupt batch) raised out of
   `getmany` and crashed every consumer of the process on every restart. Now its partition is held
   (paused at the batch's offset: nothing is skipped, nothing committed past it), the batch is logged
   with topic/partition/offset and reported to the listeners, and the other partitions go on. A held
   partition is read again when it is next assigned (a rebalance, a restart).
2. Offsets that hold nothing to process (transaction commit/abort markers, records of aborted
   transactions under read_committed, compaction holes) are recorded as `SkippedOffsets`, so that
   a consumer committing only what it processed can commit past them.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from aiokafka.consumer.fetcher import FetchResult, PartitionRecords

logger = logging.getLogger(__name__)

_APPLIED = "_execution_stream_fetching"
READ_COMMITTED = "read_committed"
# The versions whose fetcher internals `apply` was written against and proven on.
TESTED_AIOKAFKA = frozenset({"0.14.0"})


@dataclass(frozen=True)
class UndecodableBatch:
    topic: str
    partition: int
    offset: int
    error: str


UndecodableListener = Callable[[UndecodableBatch], None]
_listeners: list[UndecodableListener] = []


class _UndecodableBatchError(Exception):
    def __init__(self, tp: Any, offset: int, cause: Exception) -> None:
        super().__init__(f"{tp.topic}[{tp.partition}]@{offset}: {cause!r}")
        self.tp, self.offset, self.cause = tp, offset, cause


class SkippedOffsets:
    """Per partition of the tracked topics, the half-open offset ranges known to hold no record a
    consumer is given. Facts about the log: true for every reader of it, whoever fetched them."""

    def __init__(self) -> None:
        self._tracked: set[str] = set()
        self._ranges: dict[Any, list[tuple[int, int]]] = {}

    def track(self, topics: set[str]) -> None:
        self._tracked |= topics

    def add(self, tp: Any, begin: int, end: int) -> None:
        # Called for every record fetched: most are next to the one before, an empty range.
        if begin >= end or tp.topic not in self._tracked:
            return
        key = (tp.topic, tp.partition)
        ranges = self._ranges.get(key, [])
        bisect.insort(ranges, (begin, end))
        self._ranges[key] = _merged(ranges)

    def end_of_range_at(self, tp: Any, offset: int) -> int | None:
        """The end of the skipped range holding `offset`, if one does."""
        ranges = self._ranges.get((tp.topic, tp.partition), [])
        index = bisect.bisect_right(ranges, (offset, float("inf"))) - 1
        if index >= 0 and ranges[index][0] <= offset < ranges[index][1]:
            return ranges[index][1]
        return None

    def forget_below(self, tp: Any, offset: int) -> None:
        key = (tp.topic, tp.partition)
        kept = [(begin, end) for begin, end in self._ranges.get(key, []) if end > offset]
        if kept:
            self._ranges[key] = kept
        else:
            self._ranges.pop(key, None)

    def partitions(self) -> list[tuple[str, int]]:
        return list(self._ranges)


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for begin, end in ranges:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


SKIPPED = SkippedOffsets()


def on_undecodable(listener: UndecodableListener) -> None:
    _listeners.append(listener)


def require_tested_version(distribution: str, tested: frozenset[str]) -> None:
    """Patching the internals of a version they were not tested with could lose records silently."""
    installed = metadata.version(distribution)
    if installed not in tested:
        raise RuntimeError(
            f"{distribution} {installed} is installed, but execution-stream patches its internals and was "
            f"tested only with {distribution} {', '.join(sorted(tested))}: run the tests (unit, faults) "
            "with it, then add it to the tested versions"
        )


def apply() -> None:
    require_tested_version("aiokafka", TESTED_AIOKAFKA)
    if getattr(PartitionRecords, _APPLIED, False):
        return
    original_unpack = PartitionRecords._unpack_records

    def unpack_records(self: Any) -> Iterator[Any]:
        expected = self.next_fetch_offset
        try:
            for record in original_unpack(self):
                SKIPPED.add(self._tp, expected, record.offset)
                expected = record.offset + 1
                yield record
        except Exception as error:
            raise _UndecodableBatchError(self._tp, self.next_fetch_offset, error) from error
        SKIPPED.add(self._tp, expected, self.next_fetch_offset)

    def getall(self: Any, max_records: int | None = None) -> list[Any]:
        """aiokafka's, except that the records before an undecodable batch are delivered."""
        if not self.check_assignment(self._topic_partition) or not self.has_more():
            return []
        delivered: list[Any] = []
        try:
            for record in self._partition_records:
                delivered.append(record)
                if max_records is not None and len(delivered) >= max_records:
                    self._update_position()
                    return delivered
        except _UndecodableBatchError as error:
            self._update_position()
            _hold(self, error)
            return delivered
        self._update_position()
        self._partition_records = None
        return delivered

    PartitionRecords._unpack_records = unpack_records
    FetchResult.getall = getall
    setattr(PartitionRecords, _APPLIED, True)


def _hold(result: Any, error: _UndecodableBatchError) -> None:
    """The partition stays where the batch begins, and is fetched no more until it is assigned again."""
    tp = error.tp
    result._partition_records = None
    assignment = result._assignment
    if assignment.active and tp in assignment.tps:
        assignment.state_value(tp).pause()
    batch = UndecodableBatch(tp.topic, tp.partition, error.offset, repr(error.cause))
    logger.error(
        "a record batch cannot be decoded; its partition is held at its offset until it is assigned "
        "again, the other partitions go on",
        extra={"topic": tp.topic, "partition": tp.partition, "offset": error.offset, "error": batch.error},
    )
    for listener in _listeners:
        listener(batch)
